"""The ClickHouse store on the real engine (chdb): schema, idempotent rows, queries,
and the sink's commit protocol."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from dashboards.store import Source, Store, decision_row, redacted, rejection_row
from doublelock.errors import ServiceError
from doublelock.events import Intent
from doublelock.verdict import Decision, Reason, Verdict
from streams.sink import ClickHouseSink

pytestmark = pytest.mark.integration

AT = 1_775_548_800_000  # 2026-04-07T08:00:00Z


def decision(intent_id: str, verdict: Verdict, reason: Reason, user: str = "U1") -> Decision:
    return Decision(intent_id, "S1", user, "account.delete", verdict, reason, AT + 5, AT + 5,
                    "v1", 1000, 500, 1000, "")


def intent(intent_id: str, ip: str = "192.0.2.1") -> Intent:
    return Intent(intent_id, "S1", "U1", "account.delete", "acct/1", AT, ip, "D1", "ui", "web")


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = Store(f"chdb://{tmp_path / 'ch'}")
    s.migrate()
    s.migrate()  # idempotent
    yield s
    s.close()


def test_rows_are_idempotent_on_intent_id(store: Store) -> None:
    row = decision_row(decision("I1", Verdict.DENY, Reason.REVOKED), intent("I1"),
                       Source("t", 0, 7))
    other = decision_row(decision("I2", Verdict.ALLOW, Reason.OK), intent("I2"),
                         Source("t", 0, 8))
    store.insert_decisions([row])
    store.insert_decisions([row, other, other])  # a replay, and one new twice in a batch
    # Stored once, not merged away later: exact without FINAL, per minute too.
    assert store.sql("SELECT intent_id, count() FROM decisions GROUP BY 1 ORDER BY 1") == [
        ("I1", 1), ("I2", 1)]
    assert store.sql("SELECT verdict, sum(intents) FROM decisions_by_minute "
                     "GROUP BY 1 ORDER BY 1") == [("allow", 1), ("deny", 1)]
    assert store.sql("SELECT intent_id, reason, ip FROM blocked_attempts") == [
        ("I1", "revoked", "192.0.2.1")]


def test_a_store_older_than_the_counts_gets_them_filled(store: Store) -> None:
    rows = [decision_row(decision(f"O{i}", Verdict.DENY, Reason.REVOKED), intent(f"O{i}"),
                         Source("t", 0, i)) for i in range(3)]
    store.insert_decisions(rows)
    held = store.sql("SELECT count() FROM decisions")
    for table in ("decisions_by_minute", "decisions_by_hour"):  # as a 0.1 store is
        store.sql(f"DROP VIEW {table}_mv")
        store.sql(f"DROP TABLE {table}")
    store.sql("DROP TABLE migrations")
    store.migrate()
    assert store.sql("SELECT sum(intents) FROM decisions_by_minute") == held
    assert store.sql("SELECT sum(intents) FROM decisions_by_hour") == held
    store.migrate()  # done once: not counted again
    assert store.sql("SELECT sum(intents) FROM decisions_by_hour") == held
    # A fill cut off half-way: some counts written, the fill not marked done.
    store.sql("TRUNCATE TABLE decisions_by_hour")
    store.sql("INSERT INTO decisions_by_hour SELECT toStartOfHour(minute), app, action, "
              "channel, verdict, reason, sum(intents) FROM decisions_by_minute "
              "GROUP BY ALL LIMIT 1")
    store.sql("DELETE FROM migrations WHERE name = 'fill decisions_by_hour'")
    store.migrate()
    assert store.sql("SELECT sum(intents) FROM decisions_by_hour") == held
    store.insert_decisions([decision_row(decision("O9", Verdict.ALLOW, Reason.OK),
                                         intent("O9"), Source("t", 0, 9))])
    assert store.sql("SELECT sum(intents) FROM decisions_by_hour") == [(held[0][0] + 1,)]


def test_rejections_are_idempotent_on_position(store: Store) -> None:
    row = rejection_row(Source("doublelock.intents", 3, 42), "malformed", "bad", 9, AT)
    store.insert_rejections([row, row])
    assert store.sql("SELECT source_topic, partition, offset, kind FROM rejections FINAL") == [
        ("doublelock.intents", 3, 42, "malformed")]


def test_dsn_password_is_redacted() -> None:
    assert redacted("http://u:secret@h:8123/db") == "http://u:***@h:8123/db"
    with pytest.raises(ServiceError, match=r"\*\*\*"):
        Store("ftp://u:secret@h/db")


class FlakyStore:
    """The real store, failing its first ``failures`` inserts as a server outage would."""

    def __init__(self, store: Store, failures: int) -> None:
        self.store, self.failures = store, failures

    def insert_decisions(self, rows: Any) -> None:
        if self.failures:
            self.failures -= 1
            raise ServiceError("ClickHouse is down")
        self.store.insert_decisions(rows)

    def insert_rejections(self, rows: Any) -> None:
        self.store.insert_rejections(rows)


class Event:
    def __init__(self) -> None:
        self.acked = 0

    def ack(self) -> bool:
        self.acked += 1
        return True


def test_sink_acks_only_after_the_rows_are_stored(store: Store) -> None:
    async def scenario() -> None:
        produced = []

        async def flush_producer() -> None:
            produced.append(True)

        sink = ClickHouseSink(FlakyStore(store, failures=1), flush_producer,  # type: ignore[arg-type]
                              max_rows=2, max_age_s=60)
        events = [Event(), Event()]
        for i, event in enumerate(events):
            sink.add(decision_row(decision(f"K{i}", Verdict.DENY, Reason.REVOKED), intent(f"K{i}"),
                                  Source("t", 0, i)), None, event)
        assert sink.due
        assert await sink.flush() is False  # ClickHouse down: kept, not acked
        assert [e.acked for e in events] == [0, 0]
        assert store.sql("SELECT count() FROM decisions") == [(0,)]
        assert await sink.flush() is True
        assert [e.acked for e in events] == [1, 1]
        assert store.sql("SELECT count() FROM decisions FINAL") == [(2,)]
        assert len(produced) == 2  # the producer is flushed before every store
        assert sink.pending == 0 and not sink.due
        sink.close()

    asyncio.run(scenario())


class SlowStore(FlakyStore):
    """The real store, taking its time over each insert, as a busy server does."""

    def insert_decisions(self, rows: Any) -> None:
        time.sleep(0.3)
        self.store.insert_decisions(rows)


def test_rows_added_while_a_batch_is_stored_go_in_the_next_one(store: Store) -> None:
    """Intents are decided concurrently: rows keep coming while a batch is being
    inserted. None may be acked with that batch unless it was stored in it."""
    async def scenario() -> None:
        async def flush_producer() -> None:
            return None

        sink = ClickHouseSink(SlowStore(store, 0), flush_producer,  # type: ignore[arg-type]
                              max_rows=1000, max_age_s=60)
        events = [Event() for _ in range(10)]

        def add(i: int) -> None:
            sink.add(decision_row(decision(f"R{i}", Verdict.DENY, Reason.REVOKED),
                                  intent(f"R{i}"), Source("t", 0, i)), None, events[i])

        for i in range(5):
            add(i)
        flushing = asyncio.ensure_future(sink.flush())
        await asyncio.sleep(0.1)  # the batch is in ClickHouse's hands
        for i in range(5, 10):
            add(i)
        assert await flushing is True
        assert [e.acked for e in events] == [1] * 5 + [0] * 5  # the late ones wait
        assert await sink.flush() is True
        assert [e.acked for e in events] == [1] * 10
        assert store.sql("SELECT count() FROM decisions") == [(10,)]
        sink.close()

    asyncio.run(scenario())


def test_an_intent_id_reused_on_another_session_keeps_the_blocked_attempt(store: Store) -> None:
    blocked = decision("X", Verdict.DENY, Reason.REVOKED)
    reused = replace(decision("X", Verdict.ALLOW, Reason.OK), session_id="S-other")
    store.insert_decisions([decision_row(blocked, intent("X"), Source("t", 0, 1))])
    store.insert_decisions([decision_row(reused, replace(intent("X"), session_id="S-other"),
                                         Source("t", 1, 1))])
    assert store.sql("SELECT intent_id, session_id, reason FROM blocked_attempts") == [
        ("X", "S1", "revoked")]
    assert store.sql("SELECT count() FROM decisions FINAL") == [(2,)]
