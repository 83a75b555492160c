"""Session lifecycle events and action intents: the core's input, as plain values.

Times are integer milliseconds since the Unix epoch (UTC), the unit of Avro's
``timestamp-millis``; the adapters convert at the boundary.
"""

from __future__ import annotations

import re
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
TOPIC_NAME: Final = re.compile(r"[A-Za-z0-9._-]{1,249}")  # Kafka's own rule
MAX_PARTITIONS: Final = 10_000


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
    # The session it was minted from (remember-me, refresh, device hand-off):
    # revoking the parent revokes it.
    parent_session_id: str | None = None


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


@dataclass(frozen=True, slots=True)
class Rotated:
    """The session id changed (at login, say): the old id is dead from ``at`` on and
    ``new_session_id`` carries its clocks and binding on."""

    session_id: str
    at: Millis
    new_session_id: str


@dataclass(frozen=True, slots=True)
class Inherited:
    """Written by the worker, not by applications: the state a rotated session hands
    to its new id, published on the new id's partition."""

    session_id: str
    at: Millis
    from_session_id: str
    user_id: str
    created_at: Millis
    login_at: Millis
    auth_time: Millis
    auth_level: int
    ip: str
    device_id: str
    last_activity: Millis
    status: str
    expires_at: Millis | None = None
    ended_at: Millis | None = None
    end_reason: str | None = None
    # The ids the login had before the new one, newest first (from_session_id too).
    former_ids: tuple[str, ...] = ()


LifecycleEvent: TypeAlias = (
    SessionCreated | Activity | Heartbeat | Reauthenticated | LoggedOut | Revoked | Expired
    | Rotated | Inherited
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
    "session.rotated": Rotated,
    "session.inherited": Inherited,
}

USER_REVOCATION_REASONS: Final = ("password_reset", "account_disabled", "mfa_enrolled", "admin")


@dataclass(frozen=True, slots=True)
class UserSessionsRevoked:
    """Every session of ``user_id`` created before ``at`` is dead, except the one
    that made the change (and what it is rotated to)."""

    user_id: str
    at: Millis
    reason: str
    except_session_id: str | None = None


USER_EVENT_TYPES: Final[Mapping[str, type[UserSessionsRevoked]]] = {
    "user.sessions_revoked": UserSessionsRevoked,
}
TYPE_NAMES: Final[Mapping[type, str]] = {
    cls: name for name, cls in {**EVENT_TYPES, **USER_EVENT_TYPES}.items()
}


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
    # Where the decision goes: a topic named after the decisions topic (its name, a
    # dot, a suffix) and a partition of it, so that an instance reads its own answers
    # only. None: the decisions topic, keyed by session id.
    reply_to: str | None = None
    reply_partition: int | None = None
    # Echoed in the decision, signed: a client takes only the answer to its own request
    # (two requests may share an intent id, and a decision may be copied around).
    nonce: str | None = None


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
            if event.parent_session_id == event.session_id:
                raise RejectedEvent("malformed", "a session cannot be its own parent")
    if isinstance(event, Inherited):
        if not (event.from_session_id and event.user_id):
            raise RejectedEvent("missing_field", "from_session_id or user_id is empty")
        for name in ("created_at", "login_at", "auth_time", "last_activity"):
            check_instant(name, getattr(event, name), now)
        _check_auth_level(event.auth_level)
        if event.session_id in event.former_ids:
            raise RejectedEvent("malformed", "a session cannot inherit from its own id")
    if isinstance(event, Rotated):
        if not event.new_session_id:
            raise RejectedEvent("missing_field", "new_session_id is empty")
        if event.new_session_id == event.session_id:
            raise RejectedEvent("malformed", "a session cannot be rotated to its own id")


def validate_user_event(event: UserSessionsRevoked, now: Millis | None = None) -> None:
    if not event.user_id:
        raise RejectedEvent("missing_field", "user_id is empty")
    check_instant("at", event.at, now)
    if event.reason not in USER_REVOCATION_REASONS:
        raise RejectedEvent("malformed", f"reason={event.reason!r} is not one of "
                            f"{', '.join(USER_REVOCATION_REASONS)}")


def validate_intent(intent: Intent, now: Millis | None = None) -> None:
    """Raise RejectedEvent if the intent cannot be decided (it is denied malformed)."""
    for name in ("intent_id", "session_id", "action"):
        if not getattr(intent, name):
            raise RejectedEvent("missing_field", f"{name} is empty")
    if intent.channel not in CHANNELS:
        raise RejectedEvent("malformed", f"channel={intent.channel!r} is not one of {CHANNELS}")
    check_instant("occurred_at", intent.occurred_at, now)
    if intent.reply_to is not None and not TOPIC_NAME.fullmatch(intent.reply_to):
        raise RejectedEvent("malformed", f"reply_to={intent.reply_to[:80]!r} is not a topic name")
    if intent.nonce is not None and len(intent.nonce) > 64:
        raise RejectedEvent("malformed", "nonce is longer than 64 characters")
    if intent.reply_partition is not None and not 0 <= intent.reply_partition < MAX_PARTITIONS:
        raise RejectedEvent("malformed",
                            f"reply_partition={intent.reply_partition} is out of range")
