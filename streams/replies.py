"""Where a decision goes: the decisions topic, or the reply topic its intent names.

An application with many instances names, in each intent, a reply topic and a
partition of it that its instance reads alone (``sdk.Doublelock`` does), so that no
instance reads every decision. A reply topic must be named after the decisions topic
(``doublelock.decisions.<suffix>``), so an intent cannot make the worker write
anywhere else, and must exist: the worker never creates topics for intents. A
decision that cannot go where its intent asks goes to the decisions topic, counted;
the application that waits elsewhere hears nothing, and treats that as a deny.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from doublelock.events import Intent

log = logging.getLogger(__name__)

# Partition counts are read again after this long (partitions can be added), and a
# topic not found is looked up again no sooner than this.
KNOWN_FOR_S: Final = 60.0
MISSING_FOR_S: Final = 1.0


class Replies:
    def __init__(self, decisions: str,
                 partition_count: Callable[[str], Awaitable[int | None]]) -> None:
        """``partition_count``: the broker's answer for a topic, None if there is none."""
        self.decisions = decisions
        self._partition_count = partition_count
        self._counts: dict[str, tuple[int | None, float]] = {}  # topic → (count, until)
        self.unroutable = 0
        self._logged_at = 0.0

    async def route(self, intent: Intent | None) -> tuple[str, int | None]:
        """(topic, partition or None for keyed) for the decision of ``intent``."""
        if intent is None or (intent.reply_to is None and intent.reply_partition is None):
            return self.decisions, None
        topic = intent.reply_to or self.decisions
        if topic != self.decisions and not topic.startswith(self.decisions + "."):
            return self._unroutable(intent, f"{topic!r} is not named after {self.decisions}")
        count = await self._count(topic)
        if count is None:
            return self._unroutable(intent, f"{topic!r} does not exist")
        partition = intent.reply_partition
        if partition is not None and not 0 <= partition < count:  # a malformed intent's too
            return self._unroutable(intent, f"{topic!r} has no partition {partition}")
        return topic, partition

    async def _count(self, topic: str) -> int | None:
        known = self._counts.get(topic)
        now = time.monotonic()
        if known is not None and now < known[1]:
            return known[0]
        try:
            count = await self._partition_count(topic)
        except Exception:  # the broker did not answer: ask later
            log.warning("could not read the partitions of %r", topic, exc_info=True)
            count = None
        if len(self._counts) > 10_000:  # names come from intents: bounded
            self._counts.clear()
        self._counts[topic] = count, now + (MISSING_FOR_S if count is None else KNOWN_FOR_S)
        return count

    def _unroutable(self, intent: Intent, why: str) -> tuple[str, int | None]:
        self.unroutable += 1
        now = time.monotonic()
        if now - self._logged_at >= 1.0:  # an app misconfigured sends many: once a second
            self._logged_at = now
            log.warning("decision for %r goes to %s: %s (%d such so far)",
                        intent.intent_id[:80], self.decisions, why, self.unroutable)
        return self.decisions, None
