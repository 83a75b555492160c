"""The first decision of every intent, for as long as the dedupe window lasts.

A Faust table keyed ``session id NUL intent id``, whose value is the decision as
emitted and the offset of the intent's record: the same offset again is a
redelivery, another one a duplicate. Written around Faust's table interface for two
reasons: the worker waits for the changelog record's acknowledgement before the
decision goes out (so a crash can never leave a decision without its record), and
keys are deleted once their window has passed (a tombstone in their partition).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Collection
from typing import Any, Final

from doublelock.events import Millis
from doublelock.verdict import Decision
from schemas.codec import Codec
from streams.admission import partition_of

log = logging.getLogger(__name__)

RECORD: Final = "doublelock.state.DecidedIntent"
SWEEP_BATCH: Final = 500  # deletions per sweep, so that one never blocks the loop for long


def dedupe_key(session_key: bytes, intent_id: str) -> bytes:
    return session_key + b"\0" + intent_id.encode()


class DecidedIntents:
    def __init__(self, table: Any, codec: Codec, window: Millis, partitions: int,
                 clock: Callable[[], Millis]) -> None:
        self.table = table
        self.codec = codec
        self.window = window
        self.partitions = partitions
        self.clock = clock
        self.deleted = 0
        # (when the window ends, key), oldest first: decisions are recorded in time order.
        self._due: deque[tuple[Millis, bytes]] = deque()
        self._scanned = False

    def first(self, key: bytes) -> tuple[int, Decision] | None:
        """(offset of its record, decision) of the intent's first decision, if any."""
        raw = self.table.data.get(key)
        return None if raw is None else self._read(raw)

    def _read(self, raw: bytes) -> tuple[int, Decision]:
        _, record = self.codec.decode_record(raw)
        return int(record["offset"]), self.codec.decode(record["decision"])

    async def record(self, key: bytes, partition: int, offset: int, decision: Decision) -> None:
        """Store the first decision; returns once its changelog record is acknowledged."""
        raw = self.codec.encode_record(RECORD, {"offset": offset,
                                                "decision": self.codec.encode(decision)})
        self.table.data[key] = raw  # the local store, in this event's partition
        # Straight to the producer (Faust's send_soon queues behind a buffer task),
        # then wait for the broker's acknowledgement.
        sent = await self.table.changelog_topic.send(
            key=key, value=raw, partition=partition, key_serializer="raw",
            value_serializer="raw", callback=self.table._on_changelog_sent, force=True)
        await sent
        self._due.append((decision.decided_at + self.window, key))

    async def sweep(self, assigned: Collection[int]) -> int:
        """Delete the keys whose window has passed, in the partitions this worker owns;
        the first call also schedules the keys recovered from the changelog."""
        if not self._scanned:
            self._scanned = True
            await self._schedule_recovered()
        now, deleted = self.clock(), 0
        while self._due and self._due[0][0] <= now and deleted < SWEEP_BATCH:
            _, key = self._due.popleft()
            partition = partition_of(key.split(b"\0", 1)[0], self.partitions)
            raw = self.table.data.get(key)
            if partition not in assigned or raw is None:
                continue  # moved to another worker, or gone already
            if self._read(raw)[1].decided_at + self.window > now:
                continue  # decided afresh after the window: a later entry is queued
            del self.table.data[key]
            self.table.send_changelog(partition, key, None)  # a tombstone
            deleted += 1
        self.deleted += deleted
        return deleted

    async def _schedule_recovered(self) -> None:
        """Queue the keys this process did not write (restored from the changelog)."""
        found = []
        for count, (key, raw) in enumerate(self.table.data.items(), start=1):
            try:
                found.append((self._read(raw)[1].decided_at + self.window, key))
            except Exception:  # unreadable: let it go with the oldest
                log.warning("decided table: unreadable value for %r", key[:80])
                found.append((0, key))
            if count % SWEEP_BATCH == 0:
                await asyncio.sleep(0)  # a large table must not stall the loop
        if found:
            self._due = deque(sorted([*found, *self._due]))
            log.info("decided table: %d recovered keys scheduled for expiry", len(found))
