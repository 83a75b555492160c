"""Scenario files: one JSON object per line, lifecycle events and intents in order.

    {"type": "session.created", "at": "2026-04-07T08:00:00Z", "session_id": "S1", ...}
    {"type": "intent", "at": "2026-04-07T08:21:00Z", "intent_id": "I1", ...}
    {"type": "user.sessions_revoked", "at": "2026-04-07T09:00:00Z", "user_id": "U1", ...}

Field names are the Avro records' own; ``at`` is the record's time (an intent's
``occurred_at``). Timestamps are ISO-8601 with an explicit offset.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TextIO, TypeAlias

from doublelock.errors import RejectedEvent
from doublelock.events import (
    EVENT_TYPES,
    TYPE_NAMES,
    USER_EVENT_TYPES,
    Intent,
    LifecycleEvent,
    Millis,
    UserSessionsRevoked,
    validate_event,
    validate_intent,
    validate_user_event,
)

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND: Final = timedelta(milliseconds=1)
TIME_FIELDS: Final = frozenset({"at", "auth_time", "expires_at", "occurred_at", "created_at",
                                "login_at", "last_activity", "ended_at"})
Line: TypeAlias = LifecycleEvent | Intent | UserSessionsRevoked


def parse_instant(name: str, value: Any) -> Millis:
    if not isinstance(value, str):
        raise RejectedEvent("malformed", f"{name} must be an ISO-8601 string, not {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise RejectedEvent("malformed", f"{name}={value!r} is not ISO-8601") from exc
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise RejectedEvent("absurd_timestamp", f"{name}={value!r} has no UTC offset")
    return (parsed - EPOCH) // MILLISECOND  # exact: no float in between


def format_instant(ms: Millis) -> str:
    text = (EPOCH + ms * MILLISECOND).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def parse_line(obj: Mapping[str, Any]) -> Line:
    """One scenario object → a validated core value (RejectedEvent if unusable)."""
    if not isinstance(obj, Mapping):
        raise RejectedEvent("malformed", "a line must be a JSON object")
    kind = obj.get("type")
    cls: type[Any]
    if not isinstance(kind, str):
        raise RejectedEvent("unknown_schema", f"type must be a string, not {kind!r:.80}")
    if kind == "intent":
        cls = Intent
    elif kind in EVENT_TYPES:
        cls = EVENT_TYPES[str(kind)]
    elif kind in USER_EVENT_TYPES:
        cls = USER_EVENT_TYPES[str(kind)]
    else:
        raise RejectedEvent("unknown_schema", f"unknown type {kind!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for name, raw in obj.items():
        if name == "type":
            continue
        target = "occurred_at" if cls is Intent and name == "at" else name
        if target not in fields:
            raise RejectedEvent("malformed", f"{kind} has no field {name!r}")
        if raw is None:
            continue
        values[target] = parse_instant(name, raw) if target in TIME_FIELDS else raw
    missing = [n for n, f in fields.items() if n not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise RejectedEvent("missing_field", f"{kind} lacks {', '.join(missing)}")
    for name, value in values.items():
        if name in TIME_FIELDS:
            continue
        if name == "attributes":
            ok = isinstance(value, dict) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        elif name == "auth_level":
            ok = type(value) is int  # not a bool
        else:
            ok = isinstance(value, str)
        if not ok:
            raise RejectedEvent("malformed", f"{kind}.{name} has the wrong type: {value!r:.80}")
    line: Line = cls(**values)
    if isinstance(line, Intent):
        validate_intent(line)
    elif isinstance(line, UserSessionsRevoked):
        validate_user_event(line)
    else:
        validate_event(line)
    return line


def read_scenario(source: TextIO) -> Iterator[tuple[int, Line | RejectedEvent, Any]]:
    """(line number, value or the rejection, the parsed JSON or None) per non-blank line."""
    for number, text in enumerate(source, start=1):
        if not text.strip():
            continue
        obj: Any = None
        try:
            text.encode("utf-8")  # a file read with errors="surrogateescape" may not be
            obj = json.loads(text)
            yield number, parse_line(obj), obj
        except UnicodeEncodeError:
            yield number, RejectedEvent("malformed", "not UTF-8"), None
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, huge integers
            yield number, RejectedEvent("malformed", f"not JSON: {str(exc)[:200]}"), None
        except RejectedEvent as exc:
            yield number, exc, obj


def to_json(value: Line) -> dict[str, Any]:
    """The scenario form of a core value (the inverse of parse_line)."""
    kind = "intent" if isinstance(value, Intent) else TYPE_NAMES[type(value)]
    out: dict[str, Any] = {"type": kind}
    for f in dataclasses.fields(value):
        item = getattr(value, f.name)
        name = "at" if f.name == "occurred_at" else f.name
        if item is None:
            continue
        out[name] = format_instant(item) if f.name in TIME_FIELDS else item
    return out
