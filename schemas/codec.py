"""Avro single-object encoding (``C3 01`` + CRC-64-AVRO fingerprint + body).

A reader finds the writer's schema by its fingerprint, so several record types share
a topic and schemas evolve: older writer versions live beside the current ones in
``schemas/avro`` and are resolved against the current (reader) schema.

Timestamps stay integer milliseconds: the codec reads with ``logicalType`` stripped,
which leaves the fingerprint unchanged (the canonical form drops it), keeps absurd
values checkable instead of crashing in a datetime conversion, and costs nothing.
"""

from __future__ import annotations

import dataclasses
import io
import json
import struct
from collections.abc import Iterable, Mapping
from enum import Enum
from pathlib import Path
from typing import Any, Final

import fastavro
from fastavro.schema import to_parsing_canonical_form

from doublelock.errors import RejectedEvent
from doublelock.events import (
    EVENT_TYPES,
    Activity,
    Expired,
    Heartbeat,
    Inherited,
    Intent,
    LifecycleEvent,
    LoggedOut,
    Reauthenticated,
    Revoked,
    Rotated,
    SessionCreated,
    UserSessionsRevoked,
)
from doublelock.session import Early, SessionState, Status
from doublelock.verdict import Decision, Reason, Verdict

MAGIC: Final = b"\xc3\x01"
HEADER_SIZE: Final = 10
SCHEMA_DIR: Final = Path(__file__).with_name("avro")

_EMPTY: Final = 0xC15D213AA4D7A795


def _table() -> tuple[int, ...]:
    rows = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY & -(fp & 1))
        rows.append(fp)
    return tuple(rows)


_CRC_TABLE: Final = _table()


def fingerprint64(data: bytes) -> int:
    """CRC-64-AVRO (Rabin) fingerprint, as the Avro specification defines it."""
    fp = _EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _CRC_TABLE[(fp ^ byte) & 0xFF]
    return fp


def _strip_logical(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_logical(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [_strip_logical(v) for v in node]
    return node


# Avro full name ↔ core type. Field names are the dataclasses' own, by design.
RECORD_TYPES: Final[Mapping[str, type]] = {
    "doublelock.session.Created": SessionCreated,
    "doublelock.session.Activity": Activity,
    "doublelock.session.Heartbeat": Heartbeat,
    "doublelock.session.Reauthenticated": Reauthenticated,
    "doublelock.session.LoggedOut": LoggedOut,
    "doublelock.session.Revoked": Revoked,
    "doublelock.session.Expired": Expired,
    "doublelock.session.Rotated": Rotated,
    "doublelock.session.Inherited": Inherited,
    "doublelock.user.SessionsRevoked": UserSessionsRevoked,
    "doublelock.Intent": Intent,
    "doublelock.Decision": Decision,
    "doublelock.state.SessionState": SessionState,
    "doublelock.state.EarlyEvents": Early,
}
RECORD_NAMES: Final[Mapping[type, str]] = {cls: name for name, cls in RECORD_TYPES.items()}
LIFECYCLE_TYPES: Final = frozenset(EVENT_TYPES.values())


class _Schema:
    __slots__ = ("fingerprint", "header", "name", "parsed")

    def __init__(self, raw: Mapping[str, Any]) -> None:
        parsed = fastavro.parse_schema(_strip_logical(raw), _write_hint=False)
        if not isinstance(parsed, dict):
            raise TypeError("a top-level schema must be a record")
        self.parsed: dict[str, Any] = parsed
        self.name = str(self.parsed["name"])
        self.fingerprint = fingerprint64(to_parsing_canonical_form(self.parsed).encode())
        self.header = MAGIC + struct.pack("<Q", self.fingerprint)


class Codec:
    """Encodes and decodes every payload doublelock reads or writes."""

    def __init__(self, schema_dir: Path = SCHEMA_DIR, max_payload: int = 64 * 1024) -> None:
        self.max_payload = max_payload
        self._by_fingerprint: dict[bytes, _Schema] = {}
        self._current: dict[str, _Schema] = {}
        for path in sorted(schema_dir.glob("**/*.avsc")):
            schema = _Schema(json.loads(path.read_text()))
            self._by_fingerprint[schema.header] = schema
            # Files under a folder named "history" are older writer versions.
            if "history" not in path.relative_to(schema_dir).parts:
                self._current[schema.name] = schema

    @property
    def names(self) -> Iterable[str]:
        return self._current.keys()

    def schema(self, name: str) -> Mapping[str, Any]:
        return self._current[name].parsed

    # -- records (dicts) ---------------------------------------------------
    def encode_record(self, name: str, record: Mapping[str, Any]) -> bytes:
        schema = self._current[name]
        out = io.BytesIO()
        out.write(schema.header)
        fastavro.schemaless_writer(out, schema.parsed, record)
        return out.getvalue()

    def decode_record(self, data: bytes | None) -> tuple[str, dict[str, Any]]:
        """(full name, record) of a framed payload; RejectedEvent if unusable."""
        if not data:
            raise RejectedEvent("malformed", "empty payload")
        if len(data) > self.max_payload:
            raise RejectedEvent("oversized", f"{len(data)} bytes > limit of {self.max_payload}")
        if len(data) < HEADER_SIZE or data[:2] != MAGIC:
            raise RejectedEvent("malformed", "not Avro single-object encoding (no C3 01 header)")
        writer = self._by_fingerprint.get(data[:HEADER_SIZE])
        if writer is None:
            raise RejectedEvent("unknown_schema", f"no schema has fingerprint {data[2:10].hex()}")
        reader = self._current.get(writer.name, writer)
        body = io.BytesIO(data)
        body.seek(HEADER_SIZE)
        try:
            record = fastavro.schemaless_reader(body, writer.parsed, reader.parsed)
        except Exception as exc:  # fastavro raises many types on corrupt bytes
            raise RejectedEvent("malformed", f"cannot decode {writer.name}: {exc!r}") from exc
        if body.tell() != len(data):
            raise RejectedEvent("malformed", f"{len(data) - body.tell()} bytes after the record")
        return writer.name, record  # type: ignore[return-value]

    # -- core values -------------------------------------------------------
    def encode(self, value: Any) -> bytes:
        name = RECORD_NAMES[type(value)]
        if isinstance(value, Early):
            return self.encode_record(name, {"session_id": value.session_id,
                                             "events": [self.encode(e) for e in value.events]})
        record = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        for key, item in record.items():
            if isinstance(item, Enum):
                record[key] = item.value
        return self.encode_record(name, record)

    def decode(self, data: bytes | None) -> Any:
        name, record = self.decode_record(data)
        cls = RECORD_TYPES.get(name)
        if cls is None:
            raise RejectedEvent("unknown_schema", f"{name} is not a record doublelock reads")
        try:
            if cls is Decision:
                record["verdict"] = Verdict(record["verdict"])
                record["reason"] = Reason(record["reason"])
                if isinstance(record.get("signature"), str):
                    # A bytes default from an older writer comes as a JSON string,
                    # one code point per byte (the Avro specification's rule).
                    record["signature"] = record["signature"].encode("latin-1")
            elif cls is SessionState:
                record["status"] = Status(record["status"])
            if "former_ids" in record:
                record["former_ids"] = tuple(record["former_ids"])
            elif cls is Early:
                try:
                    record["events"] = tuple(self.decode_lifecycle(e) for e in record["events"])
                except RejectedEvent as exc:
                    raise ValueError(f"a held event: {exc}") from exc
            return cls(**record)
        except (TypeError, ValueError) as exc:
            raise RejectedEvent("malformed", f"{name}: {exc}") from exc

    def decode_lifecycle(self, data: bytes | None) -> LifecycleEvent:
        value = self.decode(data)
        if type(value) not in LIFECYCLE_TYPES:
            raise RejectedEvent("unknown_schema", f"{type(value).__name__} on the sessions topic")
        return value  # type: ignore[no-any-return]

    def decode_user_event(self, data: bytes | None) -> UserSessionsRevoked:
        value = self.decode(data)
        if not isinstance(value, UserSessionsRevoked):
            raise RejectedEvent("unknown_schema", f"{type(value).__name__} on the users topic")
        return value

    def name_of(self, data: bytes | None) -> str | None:
        """The record's full name from its header alone, None if unknown: lets a
        reader skip the records it does not need without decoding them."""
        schema = self._by_fingerprint.get(bytes((data or b"")[:HEADER_SIZE]))
        return None if schema is None else schema.name

    def decode_intent(self, data: bytes | None) -> Intent:
        value = self.decode(data)
        if not isinstance(value, Intent):
            raise RejectedEvent("unknown_schema", f"{type(value).__name__} on the intents topic")
        return value
