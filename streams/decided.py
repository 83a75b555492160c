"""The first decision of every intent, for as long as the dedupe window lasts.

A Faust table keyed ``session id NUL intent id``, whose value is the decision as
emitted and the offset of the intent's record: the same offset again is a
redelivery, another one a duplicate. Written around Faust's table interface for two
reasons: the worker waits for the changelog record's acknowledgement before the
decision goes out (so a crash can never leave a decision without its record), and
keys are deleted once their window has passed (``streams/expiry.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final

from doublelock.events import Millis
from doublelock.verdict import Decision
from schemas.codec import Codec
from streams.admission import partition_of
from streams.expiry import Expiry

log = logging.getLogger(__name__)

RECORD: Final = "doublelock.state.DecidedIntent"
# Longer than any healthy acknowledgement, short enough that a wedged producer
# cannot hold an intent (and the application waiting for it) for good.
ACK_TIMEOUT_S: Final = 5.0


def dedupe_key(session_key: bytes, intent_id: str) -> bytes:
    return session_key + b"\0" + intent_id.encode()


class DecidedIntents:
    def __init__(self, table: Any, codec: Codec, window: Millis, partitions: int,
                 clock: Callable[[], Millis]) -> None:
        self.table = table
        self.codec = codec
        self.window = window
        self.expiry = Expiry(
            "decided", table, lambda raw: self._read(raw)[1].decided_at + window,
            lambda key: partition_of(key.split(b"\0", 1)[0], partitions), clock)

    def first(self, key: bytes) -> tuple[int, Decision] | None:
        """(offset of its record, decision) of the intent's first decision, if any."""
        raw = self.table.data.get(key)
        return None if raw is None else self._read(raw)

    def _read(self, raw: bytes) -> tuple[int, Decision]:
        _, record = self.codec.decode_record(raw)
        return int(record["offset"]), self.codec.decode(record["decision"])

    async def record(self, key: bytes, partition: int, offset: int, decision: Decision) -> bool:
        """Store the first decision; returns once its changelog record is acknowledged
        (True), or after ``ACK_TIMEOUT_S`` without it (False, and logged: the
        decision then goes out all the same rather than never)."""
        raw = self.codec.encode_record(RECORD, {"offset": offset,
                                                "decision": self.codec.encode(decision)})
        self.table.data[key] = raw  # the local store, in this event's partition
        # Straight to the producer (Faust's send_soon queues behind a buffer task),
        # then wait for the broker's acknowledgement.
        sent = await self.table.changelog_topic.send(
            key=key, value=raw, partition=partition, key_serializer="raw",
            value_serializer="raw", callback=self.table._on_changelog_sent, force=True)
        self.expiry.track(key, decision.decided_at + self.window)
        try:
            await asyncio.wait_for(asyncio.shield(sent), ACK_TIMEOUT_S)
        except TimeoutError:
            log.error("decided record for %r not acknowledged in %.0f s", key[:80],
                      ACK_TIMEOUT_S)
            return False
        return True
