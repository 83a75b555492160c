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
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Final, Protocol

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from faust.types import TP

log = logging.getLogger(__name__)

StartOffset = Callable[[TP], Awaitable[int]]

# How long the barrier waits for the agent before it looks whether the offsets it
# waits for hold records at all (a transaction marker is an offset with none).
PROBE_AFTER_S: Final = 0.02


class BrokerView(Protocol):
    async def end_offsets(self, tps: Iterable[TP]) -> Mapping[TP, int]: ...

    async def has_records(self, tp: TP, start: int, end: int, timeout_s: float) -> bool: ...


class BrokerClient:
    """The broker as the barrier needs it, on the worker's own loop.

    Faust's consumer answers such calls from its fetch thread, between fetches,
    which can take longer than the whole barrier budget; a client of our own
    (aiokafka, Faust's transport) answers in a round trip. It reads committed
    data only, as the worker does.
    """

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._client: AIOKafkaConsumer | None = None

    async def _started(self) -> AIOKafkaConsumer:
        if self._client is None:
            client = AIOKafkaConsumer(bootstrap_servers=self.bootstrap,
                                      enable_auto_commit=False, client_id="doublelock-barrier",
                                      isolation_level="read_committed")
            await client.start()
            self._client = client
        return self._client

    async def end_offsets(self, tps: Iterable[TP]) -> Mapping[TP, int]:
        client = await self._started()
        wanted = [TopicPartition(tp.topic, tp.partition) for tp in tps]
        ends = await client.end_offsets(wanted)
        return {TP(tp.topic, tp.partition): offset for tp, offset in ends.items()}

    async def has_records(self, tp: TP, start: int, end: int, timeout_s: float) -> bool:
        """Whether offsets start..end-1 hold any record a consumer would be given.

        Transaction markers and aborted records take offsets but are never
        delivered; True (keep waiting) when the answer does not come in time."""
        client = await self._started()
        atp = TopicPartition(tp.topic, tp.partition)
        client.assign([atp])
        client.seek(atp, start)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = await client.getmany(atp, timeout_ms=20)
            if any(record.offset < end for record in batch.get(atp, ())):
                return True
            if await client.position(atp) >= end:
                return False
        return True

    async def close(self) -> None:
        if self._client is not None:
            await self._client.stop()
            self._client = None


class SessionsBarrier:
    """Knows how far the sessions table has applied each partition, and how far
    it must have applied before an intent at a given offset may be decided."""

    def __init__(self, intents_topic: str, sessions_topic: str, broker: BrokerView,
                 start_offset: StartOffset) -> None:
        self.intents_topic = intents_topic
        self.sessions_topic = sessions_topic
        self._broker = broker
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
        intents = await self._broker.end_offsets([TP(self.intents_topic, p) for p in partitions])
        sessions = await self._broker.end_offsets([TP(self.sessions_topic, p) for p in partitions])
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
        probed_from: int | None = None
        while self._applied_next[partition] < horizon[1]:
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), PROBE_AFTER_S)
                continue
            except TimeoutError:
                if probed_from == self._applied_next[partition]:
                    continue  # nothing moved since the last look
            # Still short: the missing offsets may be markers, never to be applied.
            first, end = self._applied_next[partition], horizon[1]
            probed_from = first
            sessions_tp = TP(self.sessions_topic, partition)
            if not await self._broker.has_records(sessions_tp, first, end, timeout_s=0.1):
                self._applied_next[partition] = max(self._applied_next[partition], end)

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
