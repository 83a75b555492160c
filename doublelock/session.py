"""Server-side session state and its transitions: ``apply(state, event) -> state``.

The transitions are monotone where security needs it: a dead session never comes
back, idle time never moves backwards, freshness never goes down.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final, TypeAlias

from doublelock.errors import RejectedEvent
from doublelock.events import (
    Activity,
    Expired,
    Heartbeat,
    Inherited,
    LifecycleEvent,
    LoggedOut,
    Millis,
    Reauthenticated,
    Revoked,
    Rotated,
    SessionCreated,
)
from doublelock.policy import Policy

# A login rotated more often than this is excepted from a user-wide revocation only
# under its latest ids (an older one named as the exception no longer spares it).
MAX_FORMER_IDS: Final = 16


class Status(StrEnum):
    ACTIVE = "active"
    LOGGED_OUT = "logged_out"
    REVOKED = "revoked"
    EXPIRED = "expired"
    ROTATED = "rotated"


@dataclass(frozen=True, slots=True)
class SessionState:
    session_id: str
    user_id: str
    login_at: Millis  # auth_time of the login that created it: the absolute clock
    auth_time: Millis  # the freshest proof of identity
    auth_level: int
    ip: str  # the bound context
    device_id: str
    last_activity: Millis
    expires_at: Millis | None = None
    status: Status = Status.ACTIVE
    ended_at: Millis | None = None
    end_reason: str | None = None
    last_seen_ip: str | None = None
    last_seen_device_id: str | None = None
    # When the session (or the one it was rotated from) was created; None in states
    # written before 0.2, where login_at stands in.
    created_at: Millis | None = None
    # The ids this login had before, newest first: a rotation keeps the login, so
    # the session that made a user-wide change stays excepted under its new id.
    former_ids: tuple[str, ...] = ()

    @property
    def born_at(self) -> Millis:
        return self.login_at if self.created_at is None else self.created_at

    @property
    def alive(self) -> bool:
        return self.status is Status.ACTIVE

    def absolute_end(self, policy: Policy) -> Millis:
        end = self.login_at + policy.absolute_timeout
        return end if self.expires_at is None else min(end, self.expires_at)

    def idle_end(self, policy: Policy) -> Millis:
        return self.last_activity + policy.idle_timeout


def apply(state: SessionState | None, event: LifecycleEvent, policy: Policy) -> SessionState:
    """The session after ``event``. Raises RejectedEvent for an unknown session."""
    if isinstance(event, SessionCreated):
        if state is not None:
            return state  # a repeated `created` neither resets nor revives
        return SessionState(
            session_id=event.session_id,
            user_id=event.user_id,
            login_at=event.auth_time,
            auth_time=event.auth_time,
            auth_level=event.auth_level,
            ip=event.ip,
            device_id=event.device_id,
            # Creation counts as the first activity.
            last_activity=max(event.at, event.auth_time),
            expires_at=event.expires_at,
            created_at=event.at,
        )
    if isinstance(event, Inherited):
        if state is not None:
            return state  # the id is taken: never overwrite a session with another
        try:
            status = Status(event.status)
        except ValueError:
            raise RejectedEvent("malformed", f"status={event.status!r} is unknown") from None
        return SessionState(
            session_id=event.session_id, user_id=event.user_id, login_at=event.login_at,
            auth_time=event.auth_time, auth_level=event.auth_level, ip=event.ip,
            device_id=event.device_id, last_activity=event.last_activity,
            expires_at=event.expires_at, status=status, ended_at=event.ended_at,
            end_reason=event.end_reason, created_at=event.created_at,
            former_ids=event.former_ids[:MAX_FORMER_IDS],
        )
    if state is None:
        raise RejectedEvent("unknown_session", f"{event.session_id!r} was never created")
    if not state.alive or isinstance(event, Heartbeat):
        return state
    if isinstance(event, Activity):
        if event.at < state.last_activity or event.at >= state.idle_end(policy):
            # Older than what we know, or after the idle timeout: it never
            # moves idle time back and never revives an idle session.
            return state
        return replace(
            state,
            last_activity=event.at,
            last_seen_ip=event.ip or state.last_seen_ip,
            last_seen_device_id=event.device_id or state.last_seen_device_id,
        )
    if isinstance(event, Reauthenticated):
        if event.auth_time <= state.auth_time:
            return state  # an older proof never lowers freshness
        return replace(
            state,
            auth_time=event.auth_time,
            auth_level=event.auth_level,
            last_activity=max(state.last_activity, event.auth_time),
            ip=event.ip or state.ip,
            device_id=event.device_id or state.device_id,
        )
    if isinstance(event, LoggedOut):
        return replace(state, status=Status.LOGGED_OUT, ended_at=event.at)
    if isinstance(event, Revoked):
        return replace(state, status=Status.REVOKED, ended_at=event.at, end_reason=event.reason)
    if isinstance(event, Expired):
        return replace(state, status=Status.EXPIRED, ended_at=event.at)
    if isinstance(event, Rotated):
        return replace(state, status=Status.ROTATED, ended_at=event.at,
                       end_reason=_rotated_to(event.new_session_id))
    raise TypeError(f"not a lifecycle event: {event!r}")


def _rotated_to(new_session_id: str) -> str:
    return f"rotated to {new_session_id}"


def successor(state: SessionState, event: Rotated) -> Inherited:
    """What ``event.new_session_id`` inherits: the clocks and the binding of the
    session, dead already if it was dead before this rotation (a second rotation of
    one id hands on a dead session).

    ``state`` may be the one before the rotation or the one after it (a record
    applied again after a crash): rotated by this very event, it hands on the live
    session it was."""
    if state.status is Status.ROTATED and state.end_reason == _rotated_to(event.new_session_id):
        state = replace(state, status=Status.ACTIVE, ended_at=None, end_reason=None)
    return Inherited(
        session_id=event.new_session_id, at=event.at, from_session_id=state.session_id,
        user_id=state.user_id, created_at=state.born_at, login_at=state.login_at,
        auth_time=state.auth_time, auth_level=state.auth_level, ip=state.ip,
        device_id=state.device_id, last_activity=state.last_activity,
        status=state.status.value, expires_at=state.expires_at, ended_at=state.ended_at,
        end_reason=state.end_reason,
        former_ids=(state.session_id, *state.former_ids)[:MAX_FORMER_IDS],
    )


# Events held for a session not created yet; past this only one that ends it is.
MAX_EARLY: Final = 32
_ENDINGS: Final = (LoggedOut, Revoked, Expired, Rotated)


@dataclass(frozen=True, slots=True)
class Early:
    """Events for a session that does not exist yet, held in its place.

    The broker may hand a session's events over before its state: the new id of a
    rotation is created by the worker after the app already uses it, and an app may
    publish a logout before the login it ends. They are applied, in order, once the
    session is created, so a logout or a revoke that came first still wins.
    """

    session_id: str
    events: tuple[LifecycleEvent, ...]


Slot: TypeAlias = SessionState | Early | None


def step(slot: Slot, event: LifecycleEvent, policy: Policy) -> tuple[Slot, RejectedEvent | None]:
    """What a session's table slot becomes after ``event``, and the rejection to
    report (an event for a session not created yet is held *and* reported)."""
    creates = isinstance(event, (SessionCreated, Inherited))
    if isinstance(slot, Early):
        if not creates:
            full = len(slot.events) >= MAX_EARLY
            ended = any(isinstance(e, _ENDINGS) for e in slot.events)
            if full and (ended or not isinstance(event, _ENDINGS)):
                return slot, _not_yet(event)  # bounded; an ending, once held, is enough
            return Early(slot.session_id, (*slot.events, event)), _not_yet(event)
        state = apply(None, event, policy)
        for early in slot.events:
            state = apply(state, early, policy)
        return state, None
    if slot is None and not creates:
        return Early(event.session_id, (event,)), _not_yet(event)
    return apply(slot, event, policy), None


def _not_yet(event: LifecycleEvent) -> RejectedEvent:
    return RejectedEvent("unknown_session", f"{event.session_id!r} was never created (the "
                         "event is held: it applies if the session is created)")
