"""For identity services: publish the session lifecycle as the worker reads it.

One method per event, each stamped now unless told otherwise, each returning once
the broker has appended it (``wait=False`` to return at once): an acknowledged
revoke is ordered before every intent published after it, so it wins. ``activity``
is a real user request; background polling is a ``heartbeat``, which never extends
a session; the two are separate methods so that neither passes for the other.
With ``DOUBLELOCK_EVENT_KEYS`` set, every event is signed.
"""

from __future__ import annotations

from typing import Any, Final

from doublelock.events import (
    Activity,
    Heartbeat,
    LifecycleEvent,
    LoggedOut,
    Millis,
    Reauthenticated,
    Revoked,
    Rotated,
    SessionCreated,
    UserSessionsRevoked,
    validate_event,
    validate_user_event,
)
from sdk.client import now_ms
from workers.client import Publisher
from workers.settings import Settings

ACK_TIMEOUT_S: Final = 10.0


class Lifecycle:
    def __init__(self, settings: Settings | None = None) -> None:
        self.publisher = Publisher(settings or Settings.from_env())

    def created(self, session_id: str, user_id: str, *, ip: str, device_id: str,
                auth_level: int = 1, auth_time: Millis | None = None,
                expires_at: Millis | None = None, parent_session_id: str | None = None,
                at: Millis | None = None, wait: bool = True) -> None:
        at = _now(at)
        self._publish(SessionCreated(session_id, at, user_id,
                                     at if auth_time is None else auth_time, auth_level, ip,
                                     device_id, expires_at, parent_session_id), wait)

    def activity(self, session_id: str, *, ip: str | None = None,
                 device_id: str | None = None, at: Millis | None = None,
                 wait: bool = False) -> None:
        """A request the user made; not waited for by default (one per request)."""
        self._publish(Activity(session_id, _now(at), ip, device_id), wait)

    def heartbeat(self, session_id: str, *, at: Millis | None = None,
                  wait: bool = False) -> None:
        self._publish(Heartbeat(session_id, _now(at)), wait)

    def reauthenticated(self, session_id: str, *, auth_level: int,
                        auth_time: Millis | None = None, ip: str | None = None,
                        device_id: str | None = None, at: Millis | None = None,
                        wait: bool = True) -> None:
        at = _now(at)
        self._publish(Reauthenticated(session_id, at, at if auth_time is None else auth_time,
                                      auth_level, ip, device_id), wait)

    def logged_out(self, session_id: str, *, at: Millis | None = None,
                   wait: bool = True) -> None:
        self._publish(LoggedOut(session_id, _now(at)), wait)

    def revoked(self, session_id: str, reason: str, *, at: Millis | None = None,
                wait: bool = True) -> None:
        self._publish(Revoked(session_id, _now(at), reason), wait)

    def rotated(self, session_id: str, new_session_id: str, *, at: Millis | None = None,
                wait: bool = True) -> None:
        self._publish(Rotated(session_id, _now(at), new_session_id), wait)

    def sessions_revoked(self, user_id: str, reason: str, *,
                         except_session_id: str | None = None, at: Millis | None = None,
                         wait: bool = True) -> None:
        """Every session of the user ends (``reason``: password_reset,
        account_disabled, mfa_enrolled or admin), but ``except_session_id``."""
        event = UserSessionsRevoked(user_id, _now(at), reason, except_session_id)
        validate_user_event(event)
        self._wait(self.publisher.user_event(event), wait)

    def _publish(self, event: LifecycleEvent, wait: bool) -> None:
        validate_event(event)  # the worker would dead-letter it: say so here, at once
        self._wait(self.publisher.lifecycle(event), wait)

    @staticmethod
    def _wait(sent: Any, wait: bool) -> None:
        if wait:
            sent.get(timeout=ACK_TIMEOUT_S)  # raises if the broker did not append it

    def flush(self) -> None:
        self.publisher.flush()

    def close(self) -> None:
        self.publisher.close()

    def __enter__(self) -> Lifecycle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _now(at: Millis | None) -> Millis:
    return now_ms() if at is None else at
