"""Inputs that once let an allow through, replayed through the real broker."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.partitioner.default import murmur2

from doublelock.events import MINUTE, Heartbeat, Intent, Reauthenticated, Revoked, SessionCreated
from schemas.codec import Codec
from workers.client import DecisionReader, Publisher

pytestmark = pytest.mark.integration


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_an_aborted_transaction_changes_nothing(start_worker: Any) -> None:
    worker = start_worker()
    settings, codec = worker.settings, Codec()
    sid, at = f"txn-{uuid.uuid4().hex[:6]}", now_ms()
    publisher, reader = Publisher(settings), DecisionReader(settings)
    # A login 20 minutes ago: account.delete needs a re-authentication within 5 minutes.
    publisher.lifecycle(SessionCreated(sid, at - 20 * MINUTE, "U1", at - 20 * MINUTE, 2,
                                       "192.0.2.9", "D1"))
    publisher.flush()
    txn = KafkaProducer(bootstrap_servers=settings.bootstrap,
                        transactional_id=f"idp-{uuid.uuid4().hex}")
    txn.init_transactions()
    txn.begin_transaction()
    txn.send(settings.topics.sessions, key=sid.encode(),
             value=codec.encode(Reauthenticated(sid, now_ms(), now_ms() - 5, 2)))
    txn.flush()
    txn.abort_transaction()
    txn.close()
    # The coordinator writes the abort marker after it answers: it may land before or
    # after this heartbeat; either way the barrier must neither wait for it forever
    # nor apply the aborted record.
    publisher.lifecycle(Heartbeat(sid, now_ms()))
    publisher.flush()
    intent = Intent(f"txn-i-{sid}", sid, "U1", "account.delete", "a/1", now_ms(), "192.0.2.9",
                    "D1", "ui", "console")
    publisher.intent(intent)
    publisher.flush()
    decision = reader.wait_for([intent.intent_id], 20)[intent.intent_id]
    publisher.close()
    reader.close()
    assert (decision.verdict.value, decision.reason.value) == ("step_up", "reauth_required")


def _wait_for_markers(settings: Any, sid: str) -> None:
    partition = (murmur2(sid.encode()) & 0x7FFFFFFF) % settings.partitions
    tp = TopicPartition(settings.topics.sessions, partition)
    committed = KafkaConsumer(bootstrap_servers=settings.bootstrap,
                              isolation_level="read_committed")
    everything = KafkaConsumer(bootstrap_servers=settings.bootstrap)
    deadline = time.monotonic() + 20
    try:
        while committed.end_offsets([tp])[tp] < everything.end_offsets([tp])[tp]:
            assert time.monotonic() < deadline, "the abort marker never came"
            time.sleep(0.05)
    finally:
        committed.close()
        everything.close()


def test_a_revoke_on_another_partition_is_rejected_not_lost(start_worker: Any) -> None:
    worker = start_worker()
    settings, codec = worker.settings, Codec()
    sid, at = f"part-{uuid.uuid4().hex[:6]}", now_ms()
    publisher, reader = Publisher(settings), DecisionReader(settings)
    publisher.lifecycle(SessionCreated(sid, at, "U1", at, 2, "192.0.2.9", "D1"))
    right = publisher.lifecycle(Revoked(sid, at + 1, "admin")).get(timeout=10).partition
    wrong = (right + 1) % settings.partitions
    publisher.producer.send(settings.topics.sessions, key=sid.encode(), partition=wrong,
                            value=codec.encode(Revoked(sid, at + 2, "admin")))
    publisher.flush()
    intent = Intent(f"part-i-{sid}", sid, "U1", "report.view", "r", now_ms(), "192.0.2.9",
                    "D1", "ui", "console")
    publisher.intent(intent)
    publisher.flush()
    decision = reader.wait_for([intent.intent_id], 20)[intent.intent_id]
    publisher.close()
    reader.close()
    assert (decision.verdict.value, decision.reason.value) == ("deny", "revoked")
    log = worker.stop()
    assert f"on partition {wrong}, but the default (murmur2) partitioner puts this key on " \
           f"{right}" in log


def test_a_transaction_marker_last_in_its_partition_does_not_hold_the_barrier(
        start_worker: Any) -> None:
    worker = start_worker()
    settings, codec = worker.settings, Codec()
    sid, at = f"marker-{uuid.uuid4().hex[:6]}", now_ms()
    publisher, reader = Publisher(settings), DecisionReader(settings)
    publisher.lifecycle(SessionCreated(sid, at, "U1", at, 2, "192.0.2.9", "D1"))
    publisher.flush()
    txn = KafkaProducer(bootstrap_servers=settings.bootstrap,
                        transactional_id=f"idp-{uuid.uuid4().hex}")
    txn.init_transactions()
    txn.begin_transaction()
    txn.send(settings.topics.sessions, key=sid.encode(),
             value=codec.encode(Heartbeat(sid, now_ms())))
    txn.commit_transaction()
    txn.close()
    _wait_for_markers(settings, sid)  # the commit marker is now the partition's last offset
    intents = [Intent(f"marker-i{n}-{sid}", sid, "U1", "report.view", "r", now_ms(),
                      "192.0.2.9", "D1", "ui", "console") for n in range(3)]
    for intent in intents:
        publisher.intent(intent)
    publisher.flush()
    got = reader.wait_for([i.intent_id for i in intents], 20)
    publisher.close()
    reader.close()
    assert {(d.verdict.value, d.reason.value) for d in got.values()} == {("allow", "ok")}
    assert len(got) == 3
