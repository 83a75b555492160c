"""The ClickHouse store, always through clickhouse-connect.

``chdb:///path`` runs the ClickHouse engine in this process (one process owns a
store at a time); ``http(s)://host:8123/db`` talks to a server. Same SQL for both.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.exceptions import ClickHouseError

from doublelock.errors import ServiceError
from doublelock.events import Intent, Millis
from doublelock.verdict import Decision

log = logging.getLogger(__name__)

HERE: Final = Path(__file__).parent
QUERIES: Final = HERE / "queries"

DECISION_COLUMNS: Final = (
    "intent_id", "session_id", "user_id", "action", "resource", "app", "channel", "ip",
    "device_id", "verdict", "reason", "occurred_at", "decided_at", "valid_until",
    "policy_version", "session_age_ms", "idle_ms", "reauth_age_ms", "detail",
    "source_partition", "source_offset", "dead_for_ms",
)
# Each table's time, for its retention (TTL): a count goes when the last row it counts
# does, so that the tables agree at the retention's edge.
RETAINED: Final = {"decisions": "occurred_at",
                   "decisions_by_minute": "minute + toIntervalMinute(1)",
                   "decisions_by_hour": "hour + toIntervalHour(1)",
                   "rejections": "rejected_at", "alerts": "window_start"}
# The tables that materialized views fill, and how to fill one from what the store holds
# (in this order: the hours come from the minutes). A fill runs once a store, at the
# first start that knows the table; while it runs, nothing else may write (one worker
# starts first on a shared server), or a decision written meanwhile may count twice.
ROLLUPS: Final = {
    "decisions_by_minute": (
        "INSERT INTO decisions_by_minute SELECT toStartOfMinute(occurred_at) AS minute, app, "
        "action, channel, verdict, reason, count() FROM decisions FINAL "
        "GROUP BY minute, app, action, channel, verdict, reason"),
    "decisions_by_hour": (
        "INSERT INTO decisions_by_hour SELECT toStartOfHour(minute) AS hour, app, action, "
        "channel, verdict, reason, sum(intents) FROM decisions_by_minute "
        "GROUP BY hour, app, action, channel, verdict, reason"),
}
ALERT_COLUMNS: Final = ("alert_id", "detector", "subject", "window_start", "detected_at",
                        "summary")
REJECTION_COLUMNS: Final = (
    "source_topic", "partition", "offset", "kind", "error", "payload_bytes", "rejected_at",
)


def redacted(dsn: str) -> str:
    """The DSN without its password, for logs and errors."""
    parsed = urlparse(dsn)
    if parsed.password is None:
        return dsn
    return parsed._replace(netloc=parsed.netloc.replace(f":{parsed.password}@", ":***@")).geturl()


def instant(ms: Millis) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True, slots=True)
class Source:
    """Where a record came from: the position stored beside what it produced."""

    topic: str
    partition: int
    offset: int


def decision_row(decision: Decision, intent: Intent | None, source: Source) -> list[Any]:
    """One ``decisions`` row. Without an intent (it did not decode) the context is empty."""
    context = ("", "", "", "", "", decision.decided_at) if intent is None else (
        intent.resource, intent.app, intent.channel, intent.ip, intent.device_id,
        intent.occurred_at,
    )
    return [
        decision.intent_id, decision.session_id, decision.user_id, decision.action,
        *context[:5], decision.verdict.value, decision.reason.value, instant(context[5]),
        instant(decision.decided_at), instant(decision.valid_until), decision.policy_version,
        decision.session_age_ms, decision.idle_ms, decision.reauth_age_ms, decision.detail,
        source.partition, source.offset, decision.dead_for_ms,
    ]


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def rejection_row(source: Source, kind: str, error: str, size: int, at: Millis) -> list[Any]:
    return [source.topic, source.partition, source.offset, kind, error, size, instant(at)]


class Store:
    def __init__(self, dsn: str) -> None:
        self.dsn = redacted(dsn)
        self._lock = threading.Lock()
        parsed = urlparse(dsn)
        try:
            if parsed.scheme == "chdb":
                path = Path(parsed.path)
                path.mkdir(parents=True, exist_ok=True)
                self.client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
            elif parsed.scheme in ("http", "https"):
                # clickhouse-connect turns TLS on by port, not by the DSN's scheme.
                self.client = clickhouse_connect.get_client(
                    dsn=dsn, secure=parsed.scheme == "https")
            else:
                raise ServiceError(
                    f"unsupported ClickHouse DSN {self.dsn!r}: use chdb:// or http(s)://")
        except ClickHouseError as exc:
            raise ServiceError(f"cannot open ClickHouse at {self.dsn}: {exc}") from exc

    def migrate(self, retention_days: int = 0) -> None:
        """Create or upgrade the schema; keep rows ``retention_days`` (0: for ever)."""
        for statement in _statements((HERE / "ddl.sql").read_text()):
            self._run(self.client.command, statement)
        done = {name for (name,) in self.sql("SELECT name FROM migrations")}
        for table, fill in ROLLUPS.items():
            # Not marked done: the table is new to this store, or its fill was cut off.
            # Counted again from scratch, then marked, so a cut-off fill is redone whole.
            if f"fill {table}" not in done:
                self._run(self.client.command, f"TRUNCATE TABLE {table}")
                self._run(self.client.command, fill)
                self._run(self.client.insert, "migrations",
                          [[f"fill {table}", datetime.now(UTC)]], column_names=("name", "done_at"))
        for table, time_of in RETAINED.items():
            self._retain(table, time_of, retention_days)

    def _retain(self, table: str, time_of: str, days: int) -> None:
        ttl = f"TTL toDateTime({time_of}) + toIntervalDay({int(days)})"
        current = self.sql("SELECT create_table_query FROM system.tables WHERE database = "
                           "currentDatabase() AND name = {t:String}", {"t": table})[0][0]
        if days > 0 and ttl not in current:
            # Old parts are dropped by merges as they come, not rewritten now.
            self._run(self.client.command, f"ALTER TABLE {table} MODIFY {ttl}",
                      settings={"materialize_ttl_after_modify": 0})
        elif days <= 0 and " TTL " in current:
            self._run(self.client.command, f"ALTER TABLE {table} REMOVE TTL")

    def insert_decisions(self, rows: Sequence[Sequence[Any]]) -> None:
        """Insert the decisions this store does not hold yet: a record delivered again
        (after a crash, before its offset was committed) is stored once, so that every
        count, the per-minute ones included, is exact without FINAL."""
        fresh: dict[tuple[str, str], Sequence[Any]] = {}
        for row in rows:
            fresh.setdefault((row[0], row[1]), row)  # (intent_id, session_id)
        if not fresh:
            return
        hours = sorted({_hour(row[11]) for row in fresh.values()})  # occurred_at
        held = self.sql(
            "SELECT intent_id, session_id FROM decisions "
            "WHERE toStartOfHour(occurred_at) IN {hours:Array(DateTime('UTC'))} "
            "AND (intent_id, session_id) IN {keys:Array(Tuple(String, String))}",
            {"hours": hours, "keys": list(fresh)})
        for key in held:
            fresh.pop((key[0], key[1]), None)
        if fresh:
            self._run(self.client.insert, "decisions", list(fresh.values()),
                      column_names=DECISION_COLUMNS)

    def insert_alerts(self, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._run(self.client.insert, "alerts", rows, column_names=ALERT_COLUMNS)

    def insert_rejections(self, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._run(self.client.insert, "rejections", rows, column_names=REJECTION_COLUMNS)

    def query(self, name: str, **parameters: Any) -> list[dict[str, Any]]:
        """Run ``queries/<name>.sql`` with ClickHouse query parameters."""
        return self.records((QUERIES / f"{name}.sql").read_text(), parameters)

    def records(self, sql: str, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Rows of ``sql`` as dicts, with ClickHouse query parameters."""
        return self.timed_records(sql, parameters)[0]

    def timed_records(self, sql: str, parameters: Mapping[str, Any]
                      ) -> tuple[list[dict[str, Any]], float]:
        """``records``, and the milliseconds the query took (not counting the wait
        for another query of this store to finish)."""
        timing: list[float] = []
        result = self._run(self.client.query, sql, parameters=parameters, _timing=timing)
        rows = [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]
        return rows, timing[0]

    def sql(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return list(self._run(self.client.query, sql, parameters=parameters).result_rows)

    def close(self) -> None:
        self.client.close()

    def _run(self, call: Any, *args: Any, _timing: list[float] | None = None,
             **kwargs: Any) -> Any:
        try:
            with self._lock:  # the sink writes and the dashboard reads from threads
                started = time.perf_counter()
                try:
                    return call(*args, **kwargs)
                finally:
                    if _timing is not None:
                        _timing.append((time.perf_counter() - started) * 1000)
        except ClickHouseError as exc:
            raise ServiceError(f"ClickHouse ({self.dsn}): {exc}") from exc


def _statements(script: str) -> list[str]:
    without_comments = re.sub(r"--[^\n]*", "", script)
    return [s.strip() for s in without_comments.split(";") if s.strip()]
