"""Lifecycle before intent: decide only once the state is caught up.

Faust serves the ``intents`` and ``sessions`` partitions with no order between
them. Rule: every lifecycle event the broker appended before it appended an intent
is applied to the state before that intent is decided. So before deciding an
intent from partition p the worker reads end offsets after the intent was appended
(ListOffsets) and waits until the sessions table has applied ``sessions`` partition
p below its end, and the global view has read every partition of ``users`` and
``sessions`` below theirs. If that takes longer than the budget, the caller denies
with ``state_unavailable``: fail closed, never guess.

With a grace period, the ends are read no sooner than ``grace`` after the intent
arrived, so a revoke appended up to then still wins.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from faust.types import TP

log = logging.getLogger(__name__)

StartOffset = Callable[[TP], Awaitable[int]]

# How long the barrier waits for the agent before it looks whether the offsets it
# waits for hold records at all (a transaction marker is an offset with none).
PROBE_AFTER_S: Final = 0.02
END_OFFSETS_TIMEOUT_S: Final = 1.0
# Refreshes at once: enough that an intent seldom waits out one that began before it,
# few enough that a burst costs a handful of ListOffsets, not one per intent.
MAX_REFRESHES: Final = 3


class BrokerView(Protocol):
    async def end_offsets(self, tps: Iterable[TP]) -> Mapping[TP, int]: ...

    async def last_record(self, tp: TP, start: int, end: int,
                          timeout_s: float) -> int | None: ...


class GlobalProgress(Protocol):
    @property
    def partitions(self) -> list[TP]: ...

    def reached(self, ends: Mapping[TP, int]) -> asyncio.Future[None]: ...


@dataclass(frozen=True, slots=True)
class Horizon:
    """One refresh's view of a partition: intents below ``intents_end`` were appended
    before every end here was read."""

    intents_end: int
    sessions_end: int
    global_ends: Mapping[TP, int]
    read_at: float  # time.monotonic() when the refresh began


@dataclass(frozen=True, slots=True)
class _Refresh:
    future: asyncio.Future[None]
    started: float  # time.monotonic()
    partitions: frozenset[int]


class BrokerClient:
    """The broker as the barrier needs it, on the worker's own loop.

    Faust's consumer answers such calls from its fetch thread, between fetches,
    which can take longer than the whole barrier budget; clients of our own
    (aiokafka, Faust's transport) answer in a round trip. They read committed data
    only, as the worker does. End offsets and range scans use a client each, so a
    slow scan never holds up the refresh every waiting intent needs.
    """

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._clients: dict[str, AIOKafkaConsumer] = {}
        self._locks = {"start": asyncio.Lock(), "scan": asyncio.Lock()}

    async def _client(self, role: str) -> AIOKafkaConsumer:
        if role not in self._clients:
            client = AIOKafkaConsumer(bootstrap_servers=self.bootstrap,
                                      enable_auto_commit=False,
                                      client_id=f"doublelock-barrier-{role}",
                                      isolation_level="read_committed")
            await client.start()
            self._clients[role] = client
        return self._clients[role]

    async def start(self) -> None:
        """Connect both clients now (each takes a bootstrap and a metadata round)."""
        async with self._locks["start"]:
            for role in ("offsets", "scan"):
                await self._client(role)

    async def end_offsets(self, tps: Iterable[TP]) -> Mapping[TP, int]:
        wanted = [TopicPartition(tp.topic, tp.partition) for tp in tps]
        async with self._locks["start"]:
            client = await self._client("offsets")
        # Refreshes may overlap: ListOffsets requests need no lock. Bounded: a refresh
        # that hangs would hold every intent until its budget.
        ends = await asyncio.wait_for(client.end_offsets(wanted), END_OFFSETS_TIMEOUT_S)
        return {TP(tp.topic, tp.partition): offset for tp, offset in ends.items()}

    async def topic_partitions(self) -> dict[str, int]:
        """Every topic on the broker, with its partition count, read afresh."""
        async with self._locks["start"]:
            client = await self._client("offsets")
        # The consumer's public topics() gives names only; the client's metadata
        # has the partitions.
        cluster = await asyncio.wait_for(client._client.fetch_all_metadata(),
                                         END_OFFSETS_TIMEOUT_S)
        return {topic: len(cluster.partitions_for_topic(topic) or ())
                for topic in cluster.topics()}

    async def last_record(self, tp: TP, start: int, end: int,
                          timeout_s: float) -> int | None:
        """The offset of the last record in start..end-1 that a consumer would be
        given, start - 1 if there is none, None if the answer does not come in time.

        Transaction markers and aborted records take offsets but are never
        delivered: the offsets after the last real record hold nothing to wait for."""
        try:
            async with self._locks["scan"]:
                async with self._locks["start"]:
                    client = await self._client("scan")
                return await asyncio.wait_for(self._scan(client, tp, start, end), timeout_s)
        except TimeoutError:
            return None

    @staticmethod
    async def _scan(client: AIOKafkaConsumer, tp: TP, start: int, end: int) -> int:
        atp = TopicPartition(tp.topic, tp.partition)
        last = start - 1
        client.assign([atp])
        client.seek(atp, start)
        while True:
            batch = await client.getmany(atp, timeout_ms=20)
            offsets = [int(r.offset) for r in batch.get(atp, ()) if r.offset < end]
            last = max([last, *offsets])
            if await client.position(atp) >= end:
                return last

    async def close(self) -> None:
        for client in self._clients.values():
            await client.stop()
        self._clients.clear()


class SessionsBarrier:
    """Knows how far the sessions table has applied each partition, and how far
    it must have applied before an intent at a given offset may be decided.

    Waiting intents are futures keyed by the offset they need, released by the
    sessions agent's progress: no polling, no thundering herd when thousands wait.
    """

    def __init__(self, intents_topic: str, sessions_topic: str, broker: BrokerView,
                 start_offset: StartOffset, global_view: GlobalProgress) -> None:
        self.intents_topic = intents_topic
        self.sessions_topic = sessions_topic
        self._broker = broker
        self._start_offset = start_offset
        self._global = global_view
        self._applied_next: dict[int, int] = {}
        self._horizon: dict[int, Horizon] = {}
        # partition → heap of (sessions offset needed, tiebreak, future)
        self._waiters: dict[int, list[tuple[int, int, asyncio.Future[None]]]] = {}
        self._tiebreak = itertools.count()
        # partition → (a, b): offsets a..b-1 hold no record, so reaching a is reaching b
        self._gaps: dict[int, tuple[int, int]] = {}
        self._refreshing: _Refresh | None = None
        self._in_flight = 0
        self._looks: dict[int, asyncio.Future[None]] = {}
        self.refreshes = 0
        self.timeouts = 0
        self._last_warning = 0.0

    def applied(self, partition: int, offset: int) -> None:
        """The sessions agent has applied (or dead-lettered) this record."""
        self._advance(partition, offset + 1)

    def reset(self) -> None:
        """Forget positions (after a rebalance the partitions may be others')."""
        self._applied_next.clear()
        self._horizon.clear()
        self._gaps.clear()

    def _advance(self, partition: int, applied_next: int) -> None:
        current = max(self._applied_next.get(partition, -1), applied_next)
        gap = self._gaps.get(partition)
        if gap is not None and current >= gap[0]:
            current = max(current, gap[1])
            del self._gaps[partition]
        self._applied_next[partition] = current
        waiters = self._waiters.get(partition)
        while waiters and waiters[0][0] <= current:
            future = heapq.heappop(waiters)[2]
            if not future.done():
                future.set_result(None)

    async def _refresh(self, partition: int, since: float) -> None:
        """Join the newest refresh if it began at ``since`` or later and reads this
        partition; else start one beside it. Intents waiting together share one,
        and an intent never waits out a refresh that began before it arrived."""
        latest = self._refreshing
        stale = (latest is None or latest.started < since or partition not in latest.partitions
                 or latest.future.done())
        if stale and (latest is None or latest.future.done()
                      or self._in_flight < MAX_REFRESHES):
            partitions = sorted({*self._horizon, partition})
            started = time.monotonic()
            latest = _Refresh(asyncio.ensure_future(self._read_ends(partitions, started)),
                              started, frozenset(partitions))
            self._refreshing = latest
            self._in_flight += 1
            latest.future.add_done_callback(self._refresh_done)
        assert latest is not None
        # Shielded: one waiter's timeout must not cancel the others' refresh.
        await asyncio.shield(latest.future)

    def _refresh_done(self, _: asyncio.Future[None]) -> None:
        self._in_flight -= 1

    async def _read_ends(self, partitions: list[int], read_at: float) -> None:
        # Intents first, the rest second: every intent below the intents end was
        # appended before the other ends were read, so each lifecycle or user event
        # appended before such an intent lies below them. One refresh serves every
        # intent already fetched, whatever the batch.
        global_tps = self._global.partitions
        if not global_tps:
            await asyncio.sleep(0.01)  # the global view has not started: nothing to wait for
            return
        intents = await self._broker.end_offsets([TP(self.intents_topic, p) for p in partitions])
        ends = await self._broker.end_offsets(
            {*global_tps, *(TP(self.sessions_topic, p) for p in partitions)})
        self.refreshes += 1
        global_ends = {tp: ends[tp] for tp in global_tps}
        for p in partitions:
            current = self._horizon.get(p)
            if current is None or current.read_at <= read_at:  # refreshes may overtake
                self._horizon[p] = Horizon(intents[TP(self.intents_topic, p)],
                                           ends[TP(self.sessions_topic, p)], global_ends,
                                           read_at)

    async def _caught_up(self, partition: int, offset: int, arrived: float,
                         not_before: float) -> None:
        horizon = self._horizon.get(partition)
        while horizon is None or offset >= horizon.intents_end or horizon.read_at < not_before:
            # The newest refresh may predate this intent (or its grace) or miss its
            # partition.
            wait = not_before - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._refresh(partition, max(arrived, not_before))
            horizon = self._horizon.get(partition)
        await self._sessions_applied(partition, horizon.sessions_end)
        # Shielded: the future is shared, and one waiter's timeout must not cancel it.
        await asyncio.shield(self._global.reached(horizon.global_ends))

    async def _sessions_applied(self, partition: int, needed: int) -> None:
        if partition not in self._applied_next:
            # Nothing applied since assignment: the consumer starts at its committed
            # offset, or the log start for a new group.
            self._advance(partition, await self._start_offset(TP(self.sessions_topic, partition)))
        if self._applied_next[partition] >= needed:
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters.setdefault(partition, []),
                       (needed, next(self._tiebreak), future))
        try:
            await asyncio.wait_for(asyncio.shield(future), PROBE_AFTER_S)
            return
        except TimeoutError:
            pass
        # No progress for a while: the missing offsets may hold no records at all
        # (transaction markers, aborted records); one look per partition tells.
        look = self._looks.get(partition)
        if look is None or look.done():
            look = asyncio.ensure_future(self._look(partition))
            self._looks[partition] = look
        await asyncio.shield(look)
        await future

    async def _look(self, partition: int) -> None:
        waiters = self._waiters.get(partition) or []
        first = self._applied_next[partition]
        end = max((w[0] for w in waiters if not w[2].done()), default=first)
        if end <= first:
            return
        last = await self._broker.last_record(TP(self.sessions_topic, partition), first, end,
                                              timeout_s=0.1)
        if last is None:
            return  # no answer in time: wait for the agent
        self._gaps[partition] = (max(first, last + 1), end)
        self._advance(partition, first)

    async def wait(self, partition: int, offset: int, timeout_s: float, arrived: float,
                   not_before: float = 0.0) -> bool:
        """True once the intent at ``offset`` of ``partition``, received by the worker
        at ``arrived``, may be decided; the ends it waits for are read no sooner than
        ``not_before`` (both time.monotonic())."""
        try:
            await asyncio.wait_for(self._caught_up(partition, offset, arrived, not_before),
                                   timeout_s)
        except (TimeoutError, KeyError) as exc:
            self.timeouts += 1
            now = time.monotonic()
            if now - self._last_warning >= 1.0:  # a lagging partition fails thousands
                self._last_warning = now
                horizon = self._horizon.get(partition)
                log.warning("sessions[%d] applied up to %s, needed %s (or the global view is "
                            "behind): not caught up in %.0f ms%s; %d such intents so far",
                            partition, self._applied_next.get(partition),
                            None if horizon is None else horizon.sessions_end,
                            timeout_s * 1000,
                            f" ({exc!r})" if isinstance(exc, KeyError) else "", self.timeouts)
            return False
        return True
