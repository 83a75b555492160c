"""The decided table forgets an intent once its dedupe window has passed: a tombstone
in its changelog, and the same id is then decided afresh."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from doublelock.events import Intent, SessionCreated
from tests.cases import policy
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
        publisher.intent(intent).get(timeout=10)
        decision = reader.wait_for([intent.intent_id], 20)[intent.intent_id]
        return decision.verdict.value, decision.reason.value

    assert attempt() == ("allow", "ok")
    assert attempt() == ("deny", "duplicate_intent")
    key = sid.encode() + b"\0" + f"T-{run}".encode()
    changelog = f"{worker.settings.app_id}-decided-changelog"
    deadline, history = time.monotonic() + 15, []
    while time.monotonic() < deadline:  # the window passes, then a sweep deletes it
        history = [v for k, v in _changelog(changelog, worker.settings.bootstrap) if k == key]
        if None in history:
            break
        time.sleep(0.5)
    assert len(history) == 2 and history[0] is not None and history[1] is None, history
    assert attempt() == ("allow", "ok")  # forgotten: decided afresh
    publisher.close()
    reader.close()
    log = worker.stop()
    assert "Traceback" not in log, log[-3000:]
