"""The changelog is the source of truth: a worker started on an empty data dir, in
the same consumer group, recovers every session before it decides anything."""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any

import pytest
from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from dashboards.store import Store
from doublelock.events import Intent, LoggedOut, SessionCreated
from workers.client import DecisionReader, Publisher

pytestmark = pytest.mark.integration


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_state_survives_a_restart_on_an_empty_data_dir(start_worker: Any) -> None:
    first = start_worker()
    run = uuid.uuid4().hex[:6]
    alive, gone = f"alive-{run}", f"gone-{run}"
    publisher = Publisher(first.settings)
    at = now_ms()
    for sid in (alive, gone):
        publisher.lifecycle(SessionCreated(sid, at, "U1", at, 2, "192.0.2.7", "D1"))
    publisher.lifecycle(LoggedOut(gone, at + 1))
    publisher.flush()
    reader = DecisionReader(first.settings)
    check = Intent(f"before-{run}", gone, "U1", "report.view", "r", now_ms(), "192.0.2.7",
                   "D1", "ui", "console")
    publisher.intent(check)  # decided after the logout: the state is in the changelog
    publisher.flush()
    assert reader.wait_for([check.intent_id], 20)[check.intent_id].reason.value == "revoked"
    first.stop()

    second = start_worker(like=first)
    assert second.settings.data_dir != first.settings.data_dir
    intents = {
        sid: Intent(f"after-{sid}", sid, "U1", "report.view", "r", now_ms(), "192.0.2.7", "D1",
                    "ui", "console") for sid in (alive, gone)
    }
    for intent in intents.values():
        publisher.intent(intent)
    publisher.flush()
    got = reader.wait_for([i.intent_id for i in intents.values()], 20)
    publisher.close()
    reader.close()
    assert (got[f"after-{alive}"].verdict.value, got[f"after-{alive}"].reason.value) == (
        "allow", "ok")
    assert (got[f"after-{gone}"].verdict.value, got[f"after-{gone}"].reason.value) == (
        "deny", "revoked")


def test_after_a_crash_a_redelivered_intent_gets_its_first_decision_again(
    start_worker: Any,
) -> None:
    # The sink never flushes: decisions go out, offsets are never committed.
    first = start_worker(DOUBLELOCK_FLUSH_INTERVAL_MS="600000", DOUBLELOCK_FLUSH_ROWS="100000")
    run = uuid.uuid4().hex[:6]
    publisher, reader = Publisher(first.settings), DecisionReader(first.settings)
    at = now_ms()
    sessions = [f"crash-{run}-{i}" for i in range(8)]
    for sid in sessions:
        publisher.lifecycle(SessionCreated(sid, at, "U1", at, 2, "192.0.2.7", "D1"))
    publisher.lifecycle(LoggedOut(sessions[0], at + 1))
    intents = [Intent(f"once-{sid}", sid, "U1", "doc.delete", "r", now_ms(), "192.0.2.7",
                      "D1", "ui", "console") for sid in sessions]
    for intent in intents:
        publisher.intent(intent)
    publisher.flush()
    ids = [i.intent_id for i in intents]
    before = reader.gather({i: 1 for i in ids}, 20)
    assert {i: d[0].reason.value for i, d in before.items()} == {
        i: "revoked" if i.endswith("-0") else "ok" for i in ids}
    time.sleep(1.0)  # the decided table's changelog leaves with the producer's next batch
    first.process.kill()  # no clean stop
    first.process.wait()
    # Whatever the killed worker committed, its intents are delivered again.
    _rewind(first.settings, first.env["DOUBLELOCK_APP_ID"], first.settings.topics.intents)

    second = start_worker(like=first, DOUBLELOCK_FLUSH_INTERVAL_MS="200")
    again = reader.gather({i: 1 for i in ids}, 30)
    publisher.close()
    reader.close()
    for intent_id in ids:
        first_answer, second_answer = before[intent_id][0], again[intent_id][0]
        assert second_answer.redelivery and not first_answer.redelivery
        # The same decision, taken at the same instant: not a second one.
        assert second_answer == dataclasses.replace(first_answer, redelivery=True)
    log = second.stop()
    assert "Traceback" not in log, log[-3000:]
    store = Store(second.settings.dsn)
    try:
        rows = store.sql("SELECT intent_id, count() FROM decisions FINAL "
                         "WHERE intent_id IN {ids:Array(String)} GROUP BY intent_id",
                         {"ids": ids})
    finally:
        store.close()
    assert dict(rows) == {i: 1 for i in ids}


def _rewind(settings: Any, group: str, topic: str, timeout_s: float = 90.0) -> None:
    """Set the group's committed offsets of ``topic`` to 0, once the killed member has
    left the group (the broker accepts no offsets from outside while it is there)."""
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap)
    deadline = time.monotonic() + timeout_s
    try:
        partitions = {TopicPartition(topic, p): OffsetAndMetadata(0, "", -1)
                      for p in range(settings.partitions)}
        while True:
            try:
                answer = admin.alter_group_offsets(group, partitions)  # error class per tp
                if answer and all(getattr(e, "errno", 1) == 0 for e in answer.values()):
                    return
            except KafkaError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"could not rewind {group} on {topic}")
            time.sleep(0.5)
    finally:
        admin.close()


def test_a_table_cache_ahead_of_its_changelog_is_dropped_not_fatal(start_worker: Any) -> None:
    """The broker's data was reset and the changelogs made again, empty: the local
    cache has read further than they hold. Faust would refuse to recover; the worker
    drops the cache and recovers from the changelogs instead."""
    first = start_worker()
    publisher = Publisher(first.settings)
    at = now_ms()
    for i in range(20):
        publisher.lifecycle(SessionCreated(f"cache-{i}", at, "U1", at, 2, "192.0.2.7", "D1"))
    publisher.flush()
    publisher.close()
    time.sleep(2)  # applied and written to the local store
    assert "Traceback" not in first.stop()
    app_id = first.env["DOUBLELOCK_APP_ID"]
    changelogs = [f"{app_id}-{table}-changelog" for table in ("sessions", "decided")]
    admin = KafkaAdminClient(bootstrap_servers=first.settings.bootstrap)
    try:
        admin.delete_topics(changelogs)
        deadline = time.monotonic() + 30
        while set(changelogs) & set(admin.list_topics()) and time.monotonic() < deadline:
            time.sleep(0.2)
        admin.create_topics([NewTopic(name, first.settings.partitions, 1,
                                      topic_configs={"cleanup.policy": "compact"})
                             for name in changelogs])
    finally:
        admin.close()
    second = start_worker(like=first, DOUBLELOCK_DATA_DIR=first.env["DOUBLELOCK_DATA_DIR"])
    log = second.stop()
    assert "removing the table cache" in log and "ConsistencyError" not in log
