"""Bad input through the real broker: each record is rejected with its cause,
dead-lettered whole, counted, stored; every intent still gets one decision, and the
worker keeps deciding correctly afterwards."""

from __future__ import annotations

import struct
import time
import uuid
from dataclasses import replace
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from dashboards.store import Store
from doublelock.events import Activity, Intent, SessionCreated
from schemas.codec import Codec
from workers.client import DecisionReader, Publisher

pytestmark = pytest.mark.integration


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _dead_letters(settings: Any, codec: Codec, expected: int) -> list[dict[str, Any]]:
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False)
    topic = settings.topics.deadletter
    consumer.assign([TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)])
    consumer.seek_to_beginning()
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    while len(records) < expected and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=200).values():
            records += [codec.decode_record(r.value)[1] for r in batch]
    consumer.close()
    return records


def test_bad_records_are_rejected_and_the_worker_goes_on(start_worker: Any) -> None:
    worker = start_worker(None, DOUBLELOCK_MAX_PAYLOAD_BYTES="4096")
    settings, codec = worker.settings, Codec()
    topics = settings.topics
    run = uuid.uuid4().hex[:6]
    sid = f"good-{run}"
    good_intent = Intent(f"good-{run}", sid, "U1", "report.view", "r", 0, "192.0.2.1", "D1",
                         "ui", "console")
    valid_header = codec.encode(good_intent)[:10]
    unknown_header = b"\xc3\x01" + struct.pack("<Q", 0xDEADBEEF)
    bad_intents: dict[str, tuple[bytes, bytes | None, str]] = {
        # header intent_id → (key, payload, dead-letter kind)
        f"garbage-{run}": (b"s", b"\x00\x01garbage", "malformed"),
        f"tombstone-{run}": (b"s", None, "malformed"),
        f"unknown-{run}": (b"s", unknown_header + b"\x02\x04", "unknown_schema"),
        f"truncated-{run}": (b"s", valid_header + b"\x10ab", "malformed"),
        f"oversized-{run}": (b"s", valid_header + b"\x00" * 5000, "oversized"),
        f"lifecycle-{run}": (b"s", codec.encode(Activity("s", now_ms())), "unknown_schema"),
    }
    publisher, reader = Publisher(settings), DecisionReader(settings)
    try:
        at = now_ms()
        # Lifecycle records that must change nothing.
        publisher.lifecycle(Activity(f"never-created-{run}", at))  # unknown_session
        publisher.raw(topics.sessions, sid.encode(), b"not avro")  # malformed
        publisher.raw(topics.sessions, sid.encode(), None)  # a tombstone: malformed
        publisher.lifecycle(SessionCreated(f"s-{run}", at // 1000, "U1", at // 1000, 1,
                                           "192.0.2.1", "D1"))  # seconds: absurd_timestamp
        publisher.lifecycle(SessionCreated(sid, at, "U1", at, 1, "192.0.2.1", "D1"))  # good
        for intent_id, (key, payload, _) in bad_intents.items():
            publisher.raw(topics.intents, key, payload, [("intent_id", intent_id.encode())])
        empty_id = Intent("", sid, "U1", "report.view", "r", at, "192.0.2.1", "D1", "ui", "c")
        publisher.raw(topics.intents, sid.encode(), codec.encode(empty_id),
                      [("intent_id", f"empty-{run}".encode())])  # missing_field
        future = Intent(f"future-{run}", sid, "U1", "report.view", "r", at + 3 * 86_400_000,
                        "192.0.2.1", "D1", "ui", "c")
        publisher.intent(future)  # absurd_timestamp: days ahead of the worker's clock
        publisher.flush()
        time.sleep(0.5)
        publisher.intent(replace(good_intent, occurred_at=now_ms()))
        publisher.flush()
        wanted = [*bad_intents, f"empty-{run}", f"future-{run}", good_intent.intent_id]
        decisions = reader.wait_for(wanted, timeout_s=30)
    finally:
        publisher.close()
        reader.close()

    assert sorted(decisions) == sorted(wanted)
    for intent_id in wanted[:-1]:
        assert (decisions[intent_id].verdict.value, decisions[intent_id].reason.value) == (
            "deny", "malformed"), intent_id
    good = decisions[good_intent.intent_id]
    assert (good.verdict.value, good.reason.value) == ("allow", "ok")

    kinds = sorted(d["kind"] for d in _dead_letters(settings, codec, 12))
    assert kinds == sorted([k for _, _, k in bad_intents.values()] + [
        "unknown_session", "malformed", "malformed", "absurd_timestamp", "missing_field",
        "absurd_timestamp"])

    log = worker.stop()
    assert "rejected[" in log and "Traceback" not in log
    store = Store(settings.dsn)
    try:
        stored = dict(store.sql("SELECT kind, count() FROM rejections FINAL GROUP BY kind"))
        assert stored == {"malformed": 5, "unknown_schema": 2, "oversized": 1,
                          "unknown_session": 1, "absurd_timestamp": 2, "missing_field": 1}
        rows = store.sql(
            "SELECT intent_id, reason FROM blocked_attempts WHERE reason = 'malformed'")
        assert {r[0] for r in rows} == set(wanted[:-1])
    finally:
        store.close()
