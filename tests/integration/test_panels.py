"""Every panel's query on chdb, over a day with known patterns planted in ordinary
traffic (tests/history.py): each finds exactly what was planted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboards import grafana
from dashboards.panels import BY_NAME, PANELS, parameters
from dashboards.store import Store
from tests.history import DAY, WINDOW, load, planted

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    path: Path = tmp_path_factory.mktemp("panels") / "ch"
    s = Store(f"chdb://{path}")
    s.migrate(retention_days=0)  # a day in May 2026 must not be aged out
    load(s, planted())
    yield s
    s.close()


def rows(store: Store, name: str, **overrides: Any) -> list[dict[str, Any]]:
    window = overrides.pop("window", WINDOW)
    return store.records(BY_NAME[name].sql, parameters(BY_NAME[name], window, overrides))


def pick(records: list[dict[str, Any]], *columns: str) -> list[tuple[Any, ...]]:
    return [tuple(r[c] for c in columns) for r in records]


def test_every_panel_runs_and_finds_something(store: Store) -> None:
    for panel in PANELS:
        assert rows(store, panel.name), panel.name


def test_blocks_over_time_and_verdict_ratio_count_each_intent_once(store: Store) -> None:
    by_reason: dict[str, int] = {}
    for r in rows(store, "blocks_over_time"):
        by_reason[r["reason"]] = by_reason.get(r["reason"], 0) + r["blocked"]
    assert by_reason == {"unknown_session": 40, "revoked": 34, "context_mismatch": 5,
                         "expired_idle": 6, "expired_absolute": 6, "reauth_required": 13}
    burst = [r for r in rows(store, "blocks_over_time", bucket=60)
             if r["reason"] == "unknown_session"]
    assert [(r["time"].strftime("%H:%M"), r["blocked"]) for r in burst] == [
        ("10:01", 20), ("10:02", 20)]
    ratio = {(r["app"], r["action"]): (r["allowed"], r["denied"], r["stepped_up"])
             for r in rows(store, "verdict_ratio")}
    assert ratio[("web", "payments.transfer")] == (6, 35, 10)
    assert ratio[("web", "report.view")] == (601, 0, 0)
    assert ratio[("web", "role.grant")] == (0, 0, 3)
    crm = rows(store, "verdict_ratio", window=replace(WINDOW, app="crm"))
    assert pick(crm, "app", "action", "denied") == [("crm", "deal.delete", 6)]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.integers(-120, 1560), length=st.integers(0, 1800), seconds=st.integers(0, 59),
       millis=st.integers(0, 999), step=st.sampled_from([60, 300, 900, 3600, 10800, 86400]))
def test_counts_read_hours_and_minutes_and_match_the_rows(
        store: Store, start: int, length: int, seconds: int, millis: int, step: int) -> None:
    """intent_counts takes whole hours from one table, whole minutes from another and the
    parts of a minute from the rows; over any range it counts what the rows do."""
    first = DAY + timedelta(minutes=start, seconds=seconds, milliseconds=millis)
    span = {"from": first, "to": first + timedelta(minutes=length, seconds=seconds)}
    counted = store.sql(
        "SELECT verdict, sum(intents) FROM intent_counts(from = {from:DateTime64(3, 'UTC')}, "
        "to = {to:DateTime64(3, 'UTC')}, step = {step:UInt32}) GROUP BY 1 ORDER BY 1",
        {**span, "step": step})
    stored = store.sql(
        "SELECT verdict, count() FROM decisions "
        "WHERE occurred_at >= {from:DateTime64(3, 'UTC')} "
        "AND occurred_at < {to:DateTime64(3, 'UTC')} GROUP BY 1 ORDER BY 1",
        span)
    assert counted == stored


def test_counts_are_exact_at_an_edge_inside_a_minute(store: Store) -> None:
    """Ranges that start or end right at a stored intent, inside its minute."""
    query = ("SELECT sum(intents) FROM intent_counts(from = {from:DateTime64(3, 'UTC')}, "
             "to = {to:DateTime64(3, 'UTC')}, step = 3600)")
    times = [t for (t,) in store.sql(
        "SELECT occurred_at FROM decisions WHERE toSecond(occurred_at) != 0 "
        "ORDER BY cityHash64(intent_id) LIMIT 40")]
    ms, hours = timedelta(milliseconds=1), timedelta(hours=2)
    for t in times:
        for start, end in ((t, t + ms), (t + ms, t + hours), (t - hours, t), (t - hours, t + ms)):
            counted = store.sql(query, {"from": start, "to": end})[0][0]
            stored = store.sql(
                "SELECT count() FROM decisions WHERE occurred_at >= {from:DateTime64(3, 'UTC')} "
                "AND occurred_at < {to:DateTime64(3, 'UTC')}", {"from": start, "to": end})[0][0]
            assert counted == stored, (start, end)


def test_bursts_from_one_ip_and_one_subnet(store: Store) -> None:
    found = pick(rows(store, "burst_sources"), "source", "scope", "attempts", "users")
    assert found == [("203.0.113.0/24", "subnet", 40, 20), ("203.0.113.66", "ip", 40, 20),
                     ("203.0.114.0/24", "subnet", 30, 15)]
    assert rows(store, "burst_sources", min_users=21) == []


def test_hijack_signals(store: Store) -> None:
    sessions = rows(store, "hijack_sessions")
    assert pick(sessions, "session_id", "user_id", "ips", "devices", "mismatches") == [
        ("S-alice-1", "alice", 2, 2, 3)]
    assert pick(rows(store, "hijack_followups"), "user_id", "mismatched_session", "from_ip",
                "other_sessions", "sessions") == [
        ("alice", "S-alice-1", "192.0.2.99", 2, "S-alice-2, S-alice-3")]
    assert rows(store, "hijack_followups", follow=60) == []  # they came 2 minutes later


def test_stale_tabs_and_how_late(store: Store) -> None:
    assert pick(rows(store, "stale_tabs"), "user_id", "app", "blocks", "median_min_past",
                "max_min_past") == [("sleepy", "crm", 5, 12.0, 180.0)]
    assert pick(rows(store, "stale_tab_delay"), "past_timeout", "blocks") == [
        ("< 1 min", 1), ("1-5 min", 2), ("5-30 min", 1), ("30 min-2 h", 1), ("2-8 h", 1)]


def test_use_after_logout(store: Store) -> None:
    found = rows(store, "dead_session_use")
    assert pick(found[:1], "user_id", "app", "attempts", "sessions", "median_min_dead") == [
        ("zombie", "cms", 4, 2, 30.0)]
    # The sprayed /24 tried revoked sessions too: 15 users, 2 attempts each, dead 1 h.
    assert sorted(pick(found[1:], "user_id", "attempts", "max_min_dead")) == sorted(
        (f"target{i}", 2, 60.0) for i in range(15))


def test_step_up_friction(store: Store) -> None:
    assert pick(rows(store, "step_up_friction"), "action", "step_ups", "retried",
                "retried_share", "step_up_rate") == [
        ("payments.transfer", 10, 6, 0.6, round(10 / 51, 4)), ("role.grant", 3, 0, 0.0, 1.0)]
    # Retries came a minute after: a 30 s window sees none.
    assert [r["retried"] for r in rows(store, "step_up_friction", retry_window=30)] == [0, 0]


def test_heatmap_and_tops(store: Store) -> None:
    heat = {(r["weekday"], r["hour"]): r["blocked"] for r in rows(store, "heatmap")}
    assert sum(heat.values()) == 104 and max(heat, key=heat.__getitem__) == (2, 10)
    assert all(weekday == 2 for weekday, _ in heat)  # 2026-05-12 is a Tuesday
    assert pick(rows(store, "top_ips", limit=1), "ip", "blocked") == [("203.0.113.66", 40)]
    assert pick(rows(store, "top_devices", limit=1), "device", "blocked") == [("spray", 30)]
    assert pick(rows(store, "top_actions", limit=2), "action", "blocked") == [
        ("payments.transfer", 45), ("account.delete", 40)]
    assert pick(rows(store, "top_users", limit=2), "user", "blocked") == [
        ("alice", 5), ("sleepy", 5)]


def test_drill_down_to_the_attempts(store: Store) -> None:
    alice = rows(store, "attempts", user="alice")
    assert [r["session_id"] for r in alice] == ["S-alice-3", "S-alice-2", "S-alice-1",
                                                "S-alice-1", "S-alice-1"]
    assert {r["ip"] for r in alice} == {"192.0.2.99"} and alice[0]["device_id"] == "evil"
    assert len(rows(store, "attempts", ip="203.0.113.66", limit=1000)) == 40
    assert len(rows(store, "attempts", reason="expired_idle", session="S-sleepy-2")) == 1
    later = replace(WINDOW, start=DAY + timedelta(hours=19))
    assert {r["user_id"] for r in rows(store, "attempts", window=later)} == {"zombie"}


def test_parameters_are_checked(store: Store) -> None:
    with pytest.raises(ValueError, match="no parameter"):
        parameters(BY_NAME["heatmap"], WINDOW, {"limit": 3})
    # Values are query parameters, never SQL: a quote in a filter is just a value.
    assert rows(store, "attempts", user="alice' OR '1'='1") == []


# -- the Grafana dashboard: the same SQL, with Grafana's macros ------------------------

GRAFANA_JSON = Path(__file__).resolve().parents[2] / "dashboards/grafana/dashboards/doublelock.json"


def test_the_committed_grafana_dashboard_is_the_generated_one() -> None:
    assert json.loads(GRAFANA_JSON.read_text()) == grafana.dashboard(), (
        "run: python -m dashboards.grafana > dashboards/grafana/dashboards/doublelock.json")


def test_every_grafana_panel_runs_on_chdb_and_agrees_with_the_dashboard(store: Store) -> None:
    """Each rawSql, its Grafana macros replaced as the plugin expands them, gives the
    rows the dashboard's query gives with the same values."""
    ms = {"from": int(WINDOW.start.timestamp() * 1000), "to": int(WINDOW.end.timestamp() * 1000)}
    board = json.loads(GRAFANA_JSON.read_text())
    assert {p["targets"][0]["datasource"]["type"] for p in board["panels"]} == {
        "grafana-clickhouse-datasource"}
    by_title = {p["title"]: p["targets"][0]["rawSql"] for p in board["panels"]}
    for panel in PANELS:
        sql = (by_title[panel.title]
               .replace("$__fromTime_ms", f"fromUnixTimestamp64Milli({ms['from']})")
               .replace("$__toTime_ms", f"fromUnixTimestamp64Milli({ms['to']})")
               .replace("$__interval_s", str(panel.params.get("bucket", 60)))
               .replace("${app:sqlstring}", "'crm'").replace("${action:sqlstring}", "''"))
        assert "$" not in sql, (panel.name, sql)
        expected = rows(store, panel.name, window=replace(WINDOW, app="crm"))
        assert store.records(sql, {}) == expected, panel.name
