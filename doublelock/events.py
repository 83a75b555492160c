"""Session lifecycle events and action intents: the core's input, as plain values.

Times are integer milliseconds since the Unix epoch (UTC), the unit of Avro's
``timestamp-millis``; the adapters convert at the boundary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from doublelock.errors import RejectedEvent

Millis = int

SECOND: Final = 1_000
MINUTE: Final = 60 * SECOND
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR

# 2000-01-01T00:00:00Z and 2100-01-01T00:00:00Z. Outside this range a timestamp is
# almost always a unit mix-up (seconds, microseconds) rather than a real instant.
EARLIEST: Final[Millis] = 946_684_800_000
LATEST: Final[Millis] = 4_102_444_800_000
# Live mode: an event further ahead of the worker's clock than this is absurd.
MAX_FUTURE: Final[Millis] = DAY

CHANNELS: Final = ("ui", "api", "ws", "cli")


@dataclass(frozen=True, slots=True)
class SessionCreated:
    session_id: str
    at: Millis
    user_id: str
    auth_time: Millis
    auth_level: int
    ip: str
    device_id: str
    expires_at: Millis | None = None


@dataclass(frozen=True, slots=True)
class Activity:
    """A real user request. Its ip/device are recorded, never rebound."""

    session_id: str
    at: Millis
    ip: str | None = None
    device_id: str | None = None


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Background traffic (polling, pings, auto-refresh). Never extends a session."""

    session_id: str
    at: Millis


@dataclass(frozen=True, slots=True)
class Reauthenticated:
    """A new proof of identity; ip/device, when given, rebind the session."""

    session_id: str
    at: Millis
    auth_time: Millis
    auth_level: int
    ip: str | None = None
    device_id: str | None = None


@dataclass(frozen=True, slots=True)
class LoggedOut:
    session_id: str
    at: Millis


@dataclass(frozen=True, slots=True)
class Revoked:
    session_id: str
    at: Millis
    reason: str


@dataclass(frozen=True, slots=True)
class Expired:
    """The identity provider declares the session over."""

    session_id: str
    at: Millis


LifecycleEvent: TypeAlias = (
    SessionCreated | Activity | Heartbeat | Reauthenticated | LoggedOut | Revoked | Expired
)

# The name each lifecycle event has on the wire and in scenario files.
EVENT_TYPES: Final[Mapping[str, type[LifecycleEvent]]] = {
    "session.created": SessionCreated,
    "session.activity": Activity,
    "session.heartbeat": Heartbeat,
    "session.reauthenticated": Reauthenticated,
    "session.logged_out": LoggedOut,
    "session.revoked": Revoked,
    "session.expired": Expired,
}
TYPE_NAMES: Final[Mapping[type, str]] = {cls: name for name, cls in EVENT_TYPES.items()}


@dataclass(frozen=True, slots=True)
class Intent:
    intent_id: str
    session_id: str
    user_id: str
    action: str
    resource: str
    occurred_at: Millis
    ip: str
    device_id: str
    channel: str
    app: str
    attributes: Mapping[str, str] = field(default_factory=dict)


def check_instant(name: str, value: Millis, now: Millis | None = None) -> None:
    """Reject an impossible timestamp; ``now`` is given in live mode only."""
    if not EARLIEST <= value < LATEST:
        raise RejectedEvent(
            "absurd_timestamp",
            f"{name}={value} ms is outside 2000..2100 (seconds or microseconds given?)",
        )
    if now is not None and value > now + MAX_FUTURE:
        raise RejectedEvent(
            "absurd_timestamp", f"{name}={value} ms is more than a day ahead of the clock"
        )


def _check_auth_level(level: int) -> None:
    if not 1 <= level <= 3:
        raise RejectedEvent("malformed", f"auth_level={level} is not 1, 2 or 3")


def validate_event(event: LifecycleEvent, now: Millis | None = None) -> None:
    """Raise RejectedEvent if the event must not touch any state."""
    if not event.session_id:
        raise RejectedEvent("missing_field", "session_id is empty")
    check_instant("at", event.at, now)
    if isinstance(event, (SessionCreated, Reauthenticated)):
        check_instant("auth_time", event.auth_time, now)
        if event.auth_time > event.at:
            # A proof from the future would restart the absolute and idle clocks and
            # the re-authentication window ahead of time.
            raise RejectedEvent(
                "absurd_timestamp", f"auth_time is {event.auth_time - event.at} ms after at")
        _check_auth_level(event.auth_level)
        if isinstance(event, SessionCreated):
            if not event.user_id:
                raise RejectedEvent("missing_field", "user_id is empty")
            if event.expires_at is not None:
                check_instant("expires_at", event.expires_at)


def validate_intent(intent: Intent, now: Millis | None = None) -> None:
    """Raise RejectedEvent if the intent cannot be decided (it is denied malformed)."""
    for name in ("intent_id", "session_id", "action"):
        if not getattr(intent, name):
            raise RejectedEvent("missing_field", f"{name} is empty")
    if intent.channel not in CHANNELS:
        raise RejectedEvent("malformed", f"channel={intent.channel!r} is not one of {CHANNELS}")
    check_instant("occurred_at", intent.occurred_at, now)
