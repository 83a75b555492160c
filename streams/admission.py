"""What a record must be before it may touch state or be decided: one set of
checks for the agents and the global view alike (RejectedEvent otherwise)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from aiokafka.partitioner import murmur2

from doublelock.errors import RejectedEvent
from doublelock.events import (
    Intent,
    LifecycleEvent,
    Millis,
    UserSessionsRevoked,
    validate_event,
    validate_intent,
    validate_user_event,
)
from doublelock.signing import SIGNATURE_HEADER, KeyRing, verify_record
from schemas.codec import Codec


class Record(Protocol):
    """A Faust message or an aiokafka ConsumerRecord: both have these."""

    @property
    def topic(self) -> str: ...

    @property
    def headers(self) -> Any: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...

    @property
    def partition(self) -> int: ...


def partition_of(key: bytes, partitions: int) -> int:
    """Where the default (murmur2) partitioner of Kafka's clients puts ``key``."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


class Admission:
    def __init__(self, codec: Codec, partitions: int, max_payload: int,
                 clock: Callable[[], Millis], event_ring: KeyRing | None = None) -> None:
        """``event_ring``: when given, lifecycle and user events must be signed by it."""
        self.codec = codec
        self.partitions = partitions
        self.max_payload = max_payload
        self.clock = clock
        self.event_ring = event_ring

    def check_signature(self, record: Record) -> None:
        if self.event_ring is None:
            return
        header = _header(record.headers, SIGNATURE_HEADER)
        if not verify_record(record.topic, record.key or b"", record.value or b"", header,
                             self.event_ring):
            raise RejectedEvent("bad_signature", f"no {SIGNATURE_HEADER} header"
                                if header is None else
                                f"signature {header[:40]!r} does not verify")

    def check_size(self, record: Record) -> None:
        size = len(record.key or b"") + len(record.value or b"")
        if size > self.max_payload:
            raise RejectedEvent("oversized", f"{size} bytes > limit of {self.max_payload}")

    def session_key(self, session_id: str, record: Record) -> bytes:
        key = session_id.encode()
        if record.key != key:
            # Co-partitioning rests on the key: a wrong one could put the record on
            # another partition than its session's state.
            raise RejectedEvent("malformed", f"record key {short(record.key)} is not the "
                                "session_id")
        expected = partition_of(key, self.partitions)
        if record.partition != expected:
            # Another partitioner (librdkafka's crc32, say): a revoke here would never
            # meet its session. Reject it loudly rather than lose it quietly.
            raise RejectedEvent("malformed", f"on partition {record.partition}, but the "
                                f"default (murmur2) partitioner puts this key on {expected}")
        return key

    def lifecycle(self, record: Record) -> tuple[LifecycleEvent, bytes]:
        """The event and its key."""
        self.check_size(record)
        self.check_signature(record)
        event = self.codec.decode_lifecycle(record.value)
        validate_event(event, now=self.clock())
        return event, self.session_key(event.session_id, record)

    def intent(self, record: Record) -> Intent:
        self.check_size(record)
        return self.codec.decode_intent(record.value)

    def intent_key(self, intent: Intent, record: Record) -> bytes:
        """The key of a decoded intent, once it is fit to be decided."""
        validate_intent(intent, now=self.clock())
        return self.session_key(intent.session_id, record)

    def user_event(self, record: Record) -> UserSessionsRevoked:
        self.check_size(record)
        self.check_signature(record)
        event = self.codec.decode_user_event(record.value)
        validate_user_event(event, now=self.clock())
        if record.key != event.user_id.encode():
            raise RejectedEvent("malformed", f"record key {short(record.key)} is not the "
                                "user_id")
        return event


def _header(headers: Any, name: str) -> bytes | None:
    """A header's value from a Faust message (mapping or pairs) or an aiokafka record."""
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or ())
    for key, value in pairs:
        if key == name:
            return value if isinstance(value, bytes) else None
    return None


def short(value: bytes | None, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(value or b'')} bytes)"
