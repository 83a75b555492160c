"""Deleting a table's keys once they can no longer matter.

A heap of (due, key), filled as keys are written and, once after recovery, from the
keys the changelog restored. A sweep deletes the due keys of the partitions this
worker owns: from the local store, and with a tombstone in the partition's changelog,
so that a restart or another worker forgets them too. Faust's own table deletion
needs the current event's partition, which a periodic sweep has not got.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable, Collection
from typing import Any, Final

from doublelock.events import Millis

log = logging.getLogger(__name__)

SWEEP_BATCH: Final = 500  # deletions (and keys scanned) between two yields to the loop

# The moment a stored value can be forgotten, or None to keep it.
DueOf = Callable[[bytes], Millis | None]


class Expiry:
    def __init__(self, name: str, table: Any, due_of: DueOf,
                 partition_of_key: Callable[[bytes], int], clock: Callable[[], Millis]) -> None:
        self.name = name
        self.table = table
        self.due_of = due_of
        self.partition_of_key = partition_of_key
        self.clock = clock
        self.deleted = 0
        self._heap: list[tuple[Millis, bytes]] = []
        self._scanned = False

    def __len__(self) -> int:
        return len(self._heap)

    def track(self, key: bytes, due: Millis | None) -> None:
        """Call whenever a write gives ``key`` a new due time."""
        if due is not None:
            heapq.heappush(self._heap, (due, key))

    async def sweep(self, assigned: Collection[int]) -> int:
        """Delete what is due in the partitions in ``assigned``; the count deleted."""
        if not self._scanned:
            self._scanned = True
            await self._schedule_restored()
        now, deleted = self.clock(), 0
        while self._heap and self._heap[0][0] <= now:
            _, key = heapq.heappop(self._heap)
            partition = self.partition_of_key(key)
            raw = self.table.data.get(key)
            if partition not in assigned or raw is None:
                continue  # moved to another worker, or gone already
            due = self._due(key, raw)
            if due is None or due > now:
                continue  # written again since: its newer due is in the heap
            del self.table.data[key]
            self.table.send_changelog(partition, key, None)
            deleted += 1
            if deleted % SWEEP_BATCH == 0:
                await asyncio.sleep(0)
        self.deleted += deleted
        return deleted

    def _due(self, key: bytes, raw: bytes) -> Millis | None:
        try:
            return self.due_of(raw)
        except Exception:  # an unreadable value is kept, and said so
            log.warning("%s table: unreadable value for %r", self.name, key[:80])
            return None

    async def _schedule_restored(self) -> None:
        restored = 0
        for count, (key, raw) in enumerate(self.table.data.items(), start=1):
            due = self._due(key, raw)
            if due is not None:
                self._heap.append((due, key))
                restored += 1
            if count % SWEEP_BATCH == 0:
                await asyncio.sleep(0)  # a large table must not stall the loop
        heapq.heapify(self._heap)
        if restored:
            log.info("%s table: %d keys scheduled for expiry", self.name, restored)
