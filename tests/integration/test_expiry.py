"""The tables forget what can no longer matter: the decided table an intent once its
dedupe window has passed, the sessions table a session a while after its absolute
end. Each leaves a tombstone in its changelog."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from doublelock.events import Intent, SessionCreated
from tests.cases import policy
from tests.live import ask
from workers.client import DecisionReader, Publisher

pytestmark = pytest.mark.integration

SHORT_WINDOW = policy(idle="30m") + '[decision]\ndedupe_window = "2s"\nttl = "10s"\n'


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _changelog(topic: str, bootstrap: str) -> list[tuple[bytes, bytes | None]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=2000)
    partitions = consumer.partitions_for_topic(topic) or set()
    consumer.assign([TopicPartition(topic, p) for p in partitions])
    consumer.seek_to_beginning()
    records = [(r.key, r.value) for r in consumer]
    consumer.close()
    return records


def _tombstoned(topic: str, bootstrap: str, key: bytes,
                timeout_s: float = 15.0) -> list[bytes | None]:
    """The key's history in the changelog, once it ends in a tombstone (or the timeout)."""
    deadline, history = time.monotonic() + timeout_s, []
    while time.monotonic() < deadline:
        history = [v for k, v in _changelog(topic, bootstrap) if k == key]
        if history and history[-1] is None:
            break
        time.sleep(0.5)
    return history


def test_an_intent_id_is_forgotten_after_its_dedupe_window(start_worker: Any) -> None:
    worker = start_worker(SHORT_WINDOW)
    sid, run = f"dd-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:6]
    publisher, reader = Publisher(worker.settings), DecisionReader(worker.settings)
    at = now_ms()
    publisher.lifecycle(SessionCreated(sid, at, "U1", at, 2, "203.0.113.7", "D1"))

    def attempt() -> tuple[str, str]:
        intent = Intent(f"T-{run}", sid, "U1", "doc.delete", "r", now_ms(), "203.0.113.7",
                        "D1", "ui", "console")
        seen = reader.gather({intent.intent_id: 1}, 0.01)  # drain what came before
        assert not seen
        decision = ask(publisher, reader, intent)
        return decision.verdict.value, decision.reason.value

    assert attempt() == ("allow", "ok")
    assert attempt() == ("deny", "duplicate_intent")
    key = sid.encode() + b"\0" + f"T-{run}".encode()
    # The window passes, then a sweep deletes the key.
    history = _tombstoned(f"{worker.settings.app_id}-decided-changelog",
                          worker.settings.bootstrap, key)
    assert len(history) == 2 and history[0] is not None and history[1] is None, history
    assert attempt() == ("allow", "ok")  # forgotten: decided afresh
    publisher.close()
    reader.close()
    log = worker.stop()
    assert "Traceback" not in log, log[-3000:]


def test_a_session_is_forgotten_after_its_absolute_end(start_worker: Any) -> None:
    worker = start_worker(policy(absolute="3s", idle="3s"))
    sid = f"gone-{uuid.uuid4().hex[:6]}"
    publisher, reader = Publisher(worker.settings), DecisionReader(worker.settings)
    at = now_ms()
    publisher.lifecycle(SessionCreated(sid, at, "U1", at, 2, "203.0.113.7", "D1")).get(10)

    def attempt(n: int) -> str:
        intent = Intent(f"{sid}-{n}", sid, "U1", "doc.delete", "r", now_ms(), "203.0.113.7",
                        "D1", "ui", "console")
        return ask(publisher, reader, intent).reason.value

    assert attempt(1) == "ok"
    # Its end at 3 s, kept for one absolute timeout more, then a sweep.
    history = _tombstoned(f"{worker.settings.app_id}-sessions-changelog",
                          worker.settings.bootstrap, sid.encode(), timeout_s=20)
    assert len(history) == 2 and history[0] is not None and history[1] is None, history
    assert attempt(2) == "unknown_session"
    publisher.close()
    reader.close()
    log = worker.stop()
    assert "Traceback" not in log, log[-3000:]


def test_keys_restored_from_the_changelog_expire_too(start_worker: Any) -> None:
    # Long enough that the first worker stops before its own sweep could take the key.
    first = start_worker(SHORT_WINDOW.replace('"2s"', '"6s"'))
    sid, run = f"rs-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:6]
    publisher, reader = Publisher(first.settings), DecisionReader(first.settings)
    at = now_ms()
    publisher.lifecycle(SessionCreated(sid, at, "U1", at, 2, "203.0.113.7", "D1")).get(10)
    intent = Intent(f"R-{run}", sid, "U1", "doc.delete", "r", now_ms(), "203.0.113.7", "D1",
                    "ui", "console")
    assert ask(publisher, reader, intent).allowed
    publisher.close()
    reader.close()
    first.stop()  # before the window ends: only the changelog knows the key now

    second = start_worker(like=first)  # an empty data dir: it restores the table
    key = sid.encode() + b"\0" + intent.intent_id.encode()
    history = _tombstoned(f"{second.settings.app_id}-decided-changelog",
                          second.settings.bootstrap, key, timeout_s=30)
    assert len(history) == 2 and history[-1] is None, history
    log = second.stop()
    assert "decided table: " in log and "keys scheduled for expiry" in log
