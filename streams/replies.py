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

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from doublelock.events import Intent

log = logging.getLogger(__name__)

# The broker's topic list is read again no sooner than this, however many names are
# asked for (intents choose them: a flood of invented names costs one read a second).
REFRESH_S: Final = 1.0
KNOWN_FOR_S: Final = 60.0  # and at least this often anyway: partitions can be added


class Replies:
    def __init__(self, decisions: str,
                 topics: Callable[[], Awaitable[Mapping[str, int]]]) -> None:
        """``topics``: every topic on the broker with its partition count."""
        self.decisions = decisions
        self._topics = topics
        self._known: Mapping[str, int] = {}
        self._read_at = -REFRESH_S
        self._lock = asyncio.Lock()
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
        age = time.monotonic() - self._read_at
        if (topic not in self._known and age >= REFRESH_S) or age >= KNOWN_FOR_S:
            async with self._lock:  # one read at a time; the waiters share its answer
                if time.monotonic() - self._read_at >= REFRESH_S:
                    try:
                        self._known = await self._topics()
                    except Exception:  # the broker did not answer: ask again later
                        log.warning("could not list the broker's topics", exc_info=True)
                    self._read_at = time.monotonic()
        return self._known.get(topic)

    def _unroutable(self, intent: Intent, why: str) -> tuple[str, int | None]:
        self.unroutable += 1
        now = time.monotonic()
        if now - self._logged_at >= 1.0:  # an app misconfigured sends many: once a second
            self._logged_at = now
            log.warning("decision for %r goes to %s: %s (%d such so far)",
                        intent.intent_id[:80], self.decisions, why, self.unroutable)
        return self.decisions, None
