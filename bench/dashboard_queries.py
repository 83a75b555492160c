"""Benchmark: every panel's query over 10 million blocked attempts in chdb, and the
dashboard's first render in headless chromium. Prints figures; asserts nothing.

    python -m bench.dashboard_queries [--rows 10000000] [--days 30] [--uniform] [--keep DIR]

The history is made by ClickHouse itself (INSERT … SELECT FROM numbers()): blocked
attempts spread over ``--days`` days, shaped as SHAPED below says (``--uniform``: every
column drawn independently), plus a tenth as many allowed intents. Each query runs
three times; the median is reported, for the last 24 hours (the dashboard's default),
the last 7 days and the whole range.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dashboards.panels import PANELS, Window, parameters
from dashboards.store import Store
from dashboards.web import serving

# Blocked attempts shaped like a real service's, so that each detector has its real work:
#   - 70%: the users' own, Zipf-like (a few users make many): 200k users, ten sessions
#     each; a session keeps its device and, but for 2% of its intents (roaming), its IP;
#     stale tabs, expiries, use after logout, step-ups, stale intents;
#   - 18%: stuffing: 20,000 bursts of about 90 attempts within 2 minutes, each from one
#     of 4,000 addresses in 250 /24s, with made-up or replayed session tokens of random
#     users;
#   - 12%: stolen sessions: a victim's session used from the thief's address and device
#     (context_mismatch), then the victim's other sessions from the same hands.
# The allowed tenth are the users' own. With --uniform every column is drawn
# independently instead (every session seen from about five IPs): the worst case.
USER = "toUInt32(200000 * pow(cityHash64(number, 2) / 18446744073709551615, 2))"
SHAPED = f"""
    if({{verdict:String}} = 'allow' OR number % 100 < 70, 'own',
       if(number % 100 < 88, 'stuffing', 'stolen')) AS kind,
    cityHash64(number, 9) % 20000 AS burst,
    multiIf(kind = 'own', {USER}, kind = 'stuffing', cityHash64(number, 2) % 200000,
            cityHash64(burst, 11) % 200000) AS victim,
    concat('u', toString(victim)) AS user_id,
    if(kind = 'stuffing', concat('x', toString(cityHash64(number, 1))),
       concat('s', toString(victim), '-', toString(cityHash64(number, 1) % 10))) AS session_id,
    if(kind = 'own', concat('d', toString(victim), '-', toString(cityHash64(session_id) % 3)),
       concat('evil', toString(burst % 4000))) AS device_id,
    IPv4NumToString(toIPv4(multiIf(
        kind = 'own' AND number % 50 != 0, 167772160 + cityHash64(session_id) % 4194304,
        kind = 'own', 167772160 + cityHash64(number, 4) % 4194304,
        3325256704 + intDiv(burst % 4000, 16) * 256 + burst % 16))) AS ip,
    {{end:DateTime64(3, 'UTC')}} - toIntervalMillisecond(if(kind = 'own',
        cityHash64(number, 7) % {{span_ms:UInt64}},
        cityHash64(burst, 7) % {{span_ms:UInt64}} + cityHash64(number, 7) % 120000))
        AS occurred_at,
    if({{verdict:String}} = 'allow', 'allow',
       if(kind = 'own' AND number % 9 = 0, 'step_up', 'deny')) AS verdict,
    multiIf(verdict = 'allow', 'ok', verdict = 'step_up', 'reauth_required',
            kind = 'stuffing', ['unknown_session', 'revoked', 'context_mismatch'][1 + number % 3],
            kind = 'stolen', 'context_mismatch',
            ['revoked', 'expired_idle', 'expired_absolute', 'stale_intent'][
                1 + cityHash64(number, 6) % 4]) AS reason,"""
UNIFORM = """
    concat('s', toString(cityHash64(number, 1) % 2000000)) AS session_id,
    concat('u', toString(cityHash64(number, 2) % 200000)) AS user_id,
    IPv4NumToString(toIPv4(3325256704 + cityHash64(number, 4) % 65536)) AS ip,
    concat('d', toString(cityHash64(number, 5) % 500000)) AS device_id,
    {end:DateTime64(3, 'UTC')} - toIntervalMillisecond(cityHash64(number, 7) % {span_ms:UInt64})
        AS occurred_at,
    {verdict:String} = 'allow' ? 'allow' : if(number % 9 = 0, 'step_up', 'deny') AS verdict,
    multiIf(verdict = 'allow', 'ok', verdict = 'step_up', 'reauth_required',
            ['revoked', 'expired_idle', 'expired_absolute', 'context_mismatch',
             'unknown_session', 'stale_intent'][1 + cityHash64(number, 6) % 6]) AS reason,"""
HISTORY = """
INSERT INTO decisions (intent_id, session_id, user_id, action, resource, app, channel, ip,
    device_id, verdict, reason, occurred_at, decided_at, valid_until, policy_version,
    session_age_ms, idle_ms, reauth_age_ms, detail, source_partition, source_offset,
    dead_for_ms)
SELECT intent_id, session_id, user_id, action, resource, app, channel, ip, device_id,
    verdict, reason, occurred_at, decided_at, valid_until, policy_version, session_age_ms,
    idle_ms, reauth_age_ms, detail, source_partition, source_offset, dead_for_ms
FROM (SELECT
    concat({tag:String}, toString(number)) AS intent_id,%s
    ['account.delete', 'payments.transfer', 'project.transfer_ownership', 'role.edit',
     'repo.delete', 'data.export', 'doc.publish'][1 + number %% 7] AS action,
    'r' AS resource,
    ['console', 'billing', 'admin-portal'][1 + cityHash64(number, 3) %% 3] AS app,
    ['ui', 'api'][1 + number %% 2] AS channel,
    occurred_at + toIntervalMillisecond(5) AS decided_at,
    occurred_at + toIntervalMillisecond(10005) AS valid_until,
    'bench' AS policy_version, 60000 AS session_age_ms, 1000 AS idle_ms,
    60000 AS reauth_age_ms, '' AS detail, 0 AS source_partition, number AS source_offset,
    if(reason IN ('revoked', 'expired_idle', 'expired_absolute'),
       toInt64(cityHash64(number, 8) %% 14400000), NULL) AS dead_for_ms
FROM numbers({first:UInt64}, {count:UInt64}))
"""


def fill(store: Store, rows: int, end: datetime, days: int, uniform: bool) -> float:
    started = time.perf_counter()
    history = HISTORY % (UNIFORM if uniform else SHAPED)
    span = days * 86_400_000
    chunk = 2_000_000
    for tag, verdict, total in (("b", "deny", rows), ("a", "allow", rows // 10)):
        for first in range(0, total, chunk):
            store.records(history, {"tag": tag, "verdict": verdict, "end": end,
                                    "span_ms": span, "first": first,
                                    "count": min(chunk, total - first)})
    for table in ("decisions_by_minute", "decisions_by_hour"):
        store.sql(f"OPTIMIZE TABLE {table} FINAL")
    return time.perf_counter() - started


def time_panels(store: Store, window: Window) -> dict[str, float]:
    timings = {}
    for panel in PANELS:
        runs = []
        for _ in range(3):
            _, elapsed = store.timed_records(panel.sql, parameters(panel, window))
            runs.append(elapsed)
        timings[panel.name] = statistics.median(runs)
    return timings


def first_render(store: Store) -> tuple[float, float]:
    """(ms to every panel drawn, ms of the slowest panel's query), cold then warm."""
    from playwright.sync_api import sync_playwright

    renders = []
    with serving(store) as dashboard, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        for _ in range(2):
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            started = time.perf_counter()
            page.goto(dashboard.url)
            page.wait_for_function("Number(document.body.dataset.loaded) >= 1", timeout=120_000)
            renders.append((time.perf_counter() - started) * 1000)
            page.close()
        browser.close()
    return renders[0], renders[1]


def main() -> None:
    args = argparse.ArgumentParser()
    args.add_argument("--rows", type=int, default=10_000_000)
    args.add_argument("--days", type=int, default=30)
    args.add_argument("--uniform", action="store_true",
                      help="every column drawn independently: the worst case")
    args.add_argument("--keep", help="a directory for the store, kept (default: a temporary one)")
    opts = args.parse_args()
    root = Path(opts.keep) if opts.keep else Path(tempfile.mkdtemp(prefix="doublelock-bench-"))
    store = Store(f"chdb://{root / 'ch'}")
    try:
        store.migrate(retention_days=0)
        end = datetime.now(UTC)
        if store.sql("SELECT count() FROM decisions")[0][0] == 0:
            print(f"filling: {opts.rows:,} blocked attempts (+{opts.rows // 10:,} allowed) "
                  f"over {opts.days} days ...", flush=True)
            took = fill(store, opts.rows, end, opts.days, opts.uniform)
            print(f"  in {took:.0f} s", flush=True)
        total, blocked = store.sql(
            "SELECT count(), countIf(verdict != 'allow') FROM decisions")[0]
        print(f"history: {total:,} rows, {blocked:,} blocked")
        ranges = {"last 24 h": Window(end - timedelta(hours=24), end),
                  "last 7 days": Window(end - timedelta(days=7), end),
                  f"all {opts.days} days": Window(end - timedelta(days=opts.days + 1), end)}
        results = {label: time_panels(store, w) for label, w in ranges.items()}
        labels = list(results)
        print(f"\n{'panel':<20}" + "".join(f"{label:>16}" for label in labels)
              + "  (ms, median of 3)")
        for panel in PANELS:
            print(f"{panel.name:<20}" + "".join(
                f"{results[label][panel.name]:>16.1f}" for label in labels))
        for label in labels:
            worst = max(results[label], key=results[label].__getitem__)
            print(f"slowest, {label}: {worst} {results[label][worst]:.0f} ms; all panels "
                  f"together {sum(results[label].values()):.0f} ms")
        cold, warm = first_render(store)
        print(f"\ndashboard first render (last 24 h, every panel drawn): {cold:.0f} ms; "
              f"again: {warm:.0f} ms")
    finally:
        store.close()
        if not opts.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
