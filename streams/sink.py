"""Batches decisions into ClickHouse and releases their offsets only once stored.

The commit protocol, per batch:
  1. the decisions are produced to Kafka (the producer is flushed),
  2. the rows are inserted into ClickHouse,
  3. the events are acked, so Faust may commit their offsets.
A crash anywhere before 3 redelivers the batch: the rows are idempotent on
intent_id, so a replay repeats work and never loses a row.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dashboards.store import Store
from doublelock.errors import ServiceError

log = logging.getLogger(__name__)


class ClickHouseSink:
    def __init__(
        self,
        store: Store,
        flush_producer: Callable[[], Awaitable[None]],
        max_rows: int,
        max_age_s: float,
    ) -> None:
        self.store = store
        self.flush_producer = flush_producer
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self.decisions: list[list[Any]] = []
        self.rejections: list[list[Any]] = []
        self.events: list[Any] = []  # Faust events awaiting their ack
        self.oldest = 0.0
        self.stored_rows = 0
        self.failures = 0
        self._lock = asyncio.Lock()
        # ClickHouse calls block; one thread keeps them off the event loop and in order.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")

    def add(self, decision_row: list[Any] | None, rejection_row: list[Any] | None,
            event: Any) -> None:
        if not self.pending:
            self.oldest = time.monotonic()
        if decision_row is not None:
            self.decisions.append(decision_row)
        if rejection_row is not None:
            self.rejections.append(rejection_row)
        if event is not None:
            self.events.append(event)

    @property
    def pending(self) -> int:
        return len(self.decisions) + len(self.rejections)

    @property
    def due(self) -> bool:
        return self.pending > 0 and (
            self.pending >= self.max_rows or time.monotonic() - self.oldest >= self.max_age_s
        )

    async def flush(self) -> bool:
        """Store and ack what is buffered; False (rows kept) if ClickHouse failed."""
        async with self._lock:
            if not self.pending:
                return True
            # Taken out now: what is added while this batch is stored waits for the
            # next one (it must never be acked with this batch without being in it).
            decisions, rejections, events = self.decisions, self.rejections, self.events
            self.decisions, self.rejections, self.events = [], [], []
            oldest, self.oldest = self.oldest, time.monotonic()
            loop = asyncio.get_running_loop()
            try:
                await self.flush_producer()
                await loop.run_in_executor(self._executor, self._store, decisions, rejections)
            except BaseException as exc:
                # Back in front, in order: the next flush stores them first.
                self.decisions = decisions + self.decisions
                self.rejections = rejections + self.rejections
                self.events = events + self.events
                self.oldest = oldest
                if not isinstance(exc, ServiceError):
                    raise
                self.failures += 1
                log.error("ClickHouse insert failed, %d rows kept for retry: %s",
                          len(decisions) + len(rejections), exc)
                return False
            self.stored_rows += len(decisions)
            for event in events:
                event.ack()
            return True

    async def backpressure(self) -> None:
        """Wait while ClickHouse is failing and the buffer is full: never grow unbounded."""
        delay = 0.1
        while self.pending >= 10 * self.max_rows and not await self.flush():
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _store(self, decisions: list[list[Any]], rejections: list[list[Any]]) -> None:
        self.store.insert_decisions(decisions)
        self.store.insert_rejections(rejections)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
