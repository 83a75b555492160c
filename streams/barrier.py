"""Lifecycle before intent: decide only once the sessions table is caught up.

Faust serves the ``intents`` and ``sessions`` partitions with no order between
them, so before deciding an intent from partition p the worker reads the end
offset of ``sessions`` partition p (a ListOffsets call) and waits until the table
has applied everything up to it. Every lifecycle event the broker appended before
that moment is then in the state. If the table does not catch up in time, the
caller denies with ``state_unavailable``: fail closed, never guess.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from faust.types import TP

log = logging.getLogger(__name__)

EndOffsets = Callable[[Iterable[TP]], Awaitable[Mapping[TP, int]]]
StartOffset = Callable[[TP], Awaitable[int]]


class ListOffsets:
    """End offsets straight from the broker on the worker's own loop.

    Faust's consumer answers such calls from its fetch thread, between fetches,
    which can take longer than the whole barrier budget; a client of our own
    (aiokafka, Faust's transport) answers in a round trip.
    """

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._client: AIOKafkaConsumer | None = None

    async def __call__(self, tps: Iterable[TP]) -> Mapping[TP, int]:
        if self._client is None:
            client = AIOKafkaConsumer(bootstrap_servers=self.bootstrap,
                                      enable_auto_commit=False, client_id="doublelock-barrier")
            await client.start()
            self._client = client
        wanted = [TopicPartition(tp.topic, tp.partition) for tp in tps]
        ends = await self._client.end_offsets(wanted)
        return {TP(tp.topic, tp.partition): offset for tp, offset in ends.items()}

    async def close(self) -> None:
        if self._client is not None:
            await self._client.stop()
            self._client = None


class SessionsBarrier:
    def __init__(self, topic: str, end_offsets: EndOffsets, start_offset: StartOffset) -> None:
        self.topic = topic
        self._end_offsets = end_offsets
        self._start_offset = start_offset
        self._applied_next: dict[int, int] = {}
        self._changed = asyncio.Event()

    def applied(self, partition: int, offset: int) -> None:
        """The sessions agent has applied (or dead-lettered) this record."""
        if offset + 1 > self._applied_next.get(partition, -1):
            self._applied_next[partition] = offset + 1
            self._changed.set()

    def reset(self) -> None:
        """Forget positions (after a rebalance the partitions may be others')."""
        self._applied_next.clear()

    async def wait(self, partition: int, timeout_s: float) -> bool:
        """True once partition ``partition`` is applied up to its current end."""
        tp = TP(self.topic, partition)
        deadline = time.monotonic() + timeout_s
        try:
            end = (await asyncio.wait_for(self._end_offsets([tp]), timeout_s))[tp]
        except (TimeoutError, KeyError) as exc:
            log.warning("no end offset for %s in %.0f ms: %r", tp, timeout_s * 1000, exc)
            return False
        if partition not in self._applied_next:
            # Nothing applied since assignment: the consumer starts at its committed
            # offset, or the log start for a new group.
            self._applied_next[partition] = await self._start_offset(tp)
        while self._applied_next[partition] < end:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning("%s applied up to %d, end is %d: not caught up in %.0f ms", tp,
                            self._applied_next[partition], end, timeout_s * 1000)
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return False
        return True
