"""Every worker's own copy of what kills sessions across partitions.

A password reset must reach a user's sessions on every partition, and a parent's
revocation its children wherever they hash. So each worker reads *every* partition
of ``users`` and ``sessions`` (a global table, kept by a consumer of its own, with
no group) into one ``Revocations``. From ``sessions`` it decodes only the records
that carry lineage (created, rotated, revoked), told apart by the Avro header.

It starts one absolute timeout back in time (older revocations only touch dead
sessions) and tells the barrier how far it has read each partition: an intent is
decided only once the view has read everything appended before it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from faust.types import TP

from doublelock.errors import RejectedEvent
from doublelock.events import Millis
from doublelock.revocations import Revocations
from streams.admission import Admission

log = logging.getLogger(__name__)

# The records of ``sessions`` that carry lineage; the others are skipped undecoded.
LINEAGE_RECORDS: Final = frozenset({
    "doublelock.session.Created", "doublelock.session.Rotated", "doublelock.session.Revoked",
})


class GlobalView:
    def __init__(self, bootstrap: str, topics: Mapping[str, int], admission: Admission,
                 revocations: Revocations, clock: Callable[[], Millis]) -> None:
        """``topics``: the users and the sessions topic, with their partition counts."""
        self.bootstrap = bootstrap
        self.users_topic, self.sessions_topic = topics
        self.topics = dict(topics)
        self.admission = admission
        self.revocations = revocations
        self.clock = clock
        self.applied = 0
        self.skipped = 0  # unusable records (the partition's agent dead-letters them)
        self._read_to: dict[TP, int] = {}  # the next offset to read, per partition
        # id(ends) → (ends, future): intents that share a refresh share one future.
        self._waiters: dict[int, tuple[Mapping[TP, int], asyncio.Future[None]]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def partitions(self) -> list[TP]:
        """Every partition the view reads; empty until it has started."""
        return sorted(self._read_to)

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                    client_id="doublelock-global-view",
                                    isolation_level="read_committed")
        await consumer.start()
        self._consumer = consumer
        tps = [TopicPartition(topic, p) for topic, n in self.topics.items() for p in range(n)]
        consumer.assign(tps)
        since = self.clock() - self.revocations.policy.absolute_timeout
        starts = await consumer.offsets_for_times({tp: since for tp in tps})
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            found = starts.get(tp)
            offset = ends[tp] if found is None else found.offset
            consumer.seek(tp, offset)
            self._read_to[TP(tp.topic, tp.partition)] = offset
        self._task = asyncio.ensure_future(self._run())
        log.info("global view reads %d partitions from %d ms ago", len(tps),
                 self.revocations.policy.absolute_timeout)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()
        for _, future in self._waiters.values():
            if not future.done():
                future.cancel()

    def reached(self, ends: Mapping[TP, int]) -> asyncio.Future[None]:
        """Resolves once the view has read every partition up to ``ends``. The future
        is shared by every caller with the same ``ends``: shield it before a timeout."""
        waiting = self._waiters.get(id(ends))
        if waiting is not None:
            return waiting[1]
        future = asyncio.get_running_loop().create_future()
        if self._covers(ends):
            future.set_result(None)
        else:
            # The entry holds ``ends`` alive, so its id cannot be reused meanwhile.
            self._waiters[id(ends)] = (ends, future)
        return future

    def _covers(self, ends: Mapping[TP, int]) -> bool:
        return bool(self._read_to) and all(self._read_to.get(tp, -1) >= end
                                           for tp, end in ends.items())

    async def _run(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=50)
                for tp, records in batches.items():
                    for record in records:
                        self._apply(tp.topic, record)
                # The position, not the last record, moves past transaction markers.
                for tp in consumer.assignment():
                    self._read_to[TP(tp.topic, tp.partition)] = await consumer.position(tp)
                self._release()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep reading: the barrier denies meanwhile
                log.exception("global view could not read")
                await asyncio.sleep(0.5)

    def _apply(self, topic: str, record: Any) -> None:
        try:
            if topic == self.users_topic:
                self.revocations.apply_user(self.admission.user_event(record))
            elif self.admission.codec.name_of(record.value) in LINEAGE_RECORDS:
                event, _ = self.admission.lifecycle(record)
                self.revocations.apply_lineage(event)
            else:
                return
            self.applied += 1
        except RejectedEvent:
            self.skipped += 1

    def _release(self) -> None:
        for key, (ends, future) in list(self._waiters.items()):
            if future.done() or self._covers(ends):
                del self._waiters[key]
                if not future.done():
                    future.set_result(None)
