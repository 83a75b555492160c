"""Lifecycle before intent: decide only once the sessions table is caught up.

Faust serves the ``intents`` and ``sessions`` partitions with no order between
them. Rule: every lifecycle event the broker appended before it appended an intent
is applied to the state before that intent is decided. So before deciding an
intent from partition p the worker knows an end offset of ``sessions`` partition p
read after the intent was appended (ListOffsets) and waits until the table has
applied everything below it. If that takes longer than the budget, the caller
denies with ``state_unavailable``: fail closed, never guess.
"""

from __future__ import annotations

import asyncio
import logging
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
                                      enable_auto_commit=False, client_id="doublelock-barrier",
                                      isolation_level="read_committed")
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
    """Knows how far the sessions table has applied each partition, and how far
    it must have applied before an intent at a given offset may be decided."""

    def __init__(self, intents_topic: str, sessions_topic: str, end_offsets: EndOffsets,
                 start_offset: StartOffset) -> None:
        self.intents_topic = intents_topic
        self.sessions_topic = sessions_topic
        self._end_offsets = end_offsets
        self._start_offset = start_offset
        self._applied_next: dict[int, int] = {}
        # partition → (intents end, sessions end) from one refresh
        self._horizon: dict[int, tuple[int, int]] = {}
        self._changed = asyncio.Event()
        self.refreshes = 0

    def applied(self, partition: int, offset: int) -> None:
        """The sessions agent has applied (or dead-lettered) this record."""
        if offset + 1 > self._applied_next.get(partition, -1):
            self._applied_next[partition] = offset + 1
            self._changed.set()

    def reset(self) -> None:
        """Forget positions (after a rebalance the partitions may be others')."""
        self._applied_next.clear()
        self._horizon.clear()

    async def _refresh(self, partition: int) -> None:
        # Intents first, sessions second: every intent below the intents end was
        # appended before the sessions end was read, so each lifecycle event
        # appended before such an intent lies below the sessions end. One refresh
        # serves every intent already fetched, whatever the batch.
        partitions = sorted({*self._horizon, partition})
        intents = await self._end_offsets([TP(self.intents_topic, p) for p in partitions])
        sessions = await self._end_offsets([TP(self.sessions_topic, p) for p in partitions])
        self.refreshes += 1
        for p in partitions:
            self._horizon[p] = (intents[TP(self.intents_topic, p)],
                                sessions[TP(self.sessions_topic, p)])

    async def _caught_up(self, partition: int, offset: int) -> None:
        horizon = self._horizon.get(partition)
        if horizon is None or offset >= horizon[0]:
            await self._refresh(partition)
            horizon = self._horizon[partition]
        if partition not in self._applied_next:
            # Nothing applied since assignment: the consumer starts at its committed
            # offset, or the log start for a new group.
            start = TP(self.sessions_topic, partition)
            self._applied_next[partition] = await self._start_offset(start)
        while self._applied_next[partition] < horizon[1]:
            self._changed.clear()
            await self._changed.wait()

    async def wait(self, partition: int, offset: int, timeout_s: float) -> bool:
        """True once the intent at ``offset`` of ``partition`` may be decided."""
        try:
            await asyncio.wait_for(self._caught_up(partition, offset), timeout_s)
        except (TimeoutError, KeyError) as exc:
            log.warning("sessions[%d] applied up to %s, needed %s: not caught up in %.0f ms%s",
                        partition, self._applied_next.get(partition),
                        self._horizon.get(partition, (None, None))[1], timeout_s * 1000,
                        f" ({exc!r})" if isinstance(exc, KeyError) else "")
            return False
        return True
