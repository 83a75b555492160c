"""What kills a session from outside its own history: a user-wide revocation, or the
revocation of a session it descends from.

Both cross partitions (a user's sessions, a parent and its children, hash apart),
so the worker keeps one ``Revocations`` fed by every partition of the ``users`` and
``sessions`` topics; the ``decide`` replay keeps one fed by the scenario.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from doublelock.events import (
    LifecycleEvent,
    Millis,
    Revoked,
    Rotated,
    SessionCreated,
    UserSessionsRevoked,
)
from doublelock.policy import Policy
from doublelock.session import SessionState

# Lineage deeper than this is not followed (and is not a real login history).
MAX_DEPTH: Final = 64


@dataclass(frozen=True, slots=True)
class Link:
    parent: str
    at: Millis
    rotation: bool  # the same login under a new id, not a session minted from it


class Revocations:
    """User not-befores and session lineage, pruned once nothing they touch can live."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._users: dict[str, list[UserSessionsRevoked]] = {}
        self._links: dict[str, Link] = {}  # child → its parent
        self._successors: dict[str, str] = {}  # rotated id → the id it was rotated to
        self._children: dict[str, int] = {}  # parent → how many links name it
        self._revoked: dict[str, Revoked] = {}

    def __len__(self) -> int:
        return sum(map(len, self._users.values())) + len(self._links) + len(self._revoked)

    def apply_user(self, event: UserSessionsRevoked) -> None:
        known = self._users.setdefault(event.user_id, [])
        if event not in known:
            known.append(event)

    def apply_lineage(self, event: LifecycleEvent) -> None:
        """Learn from a lifecycle event; those that touch no lineage are ignored."""
        if isinstance(event, SessionCreated) and event.parent_session_id:
            self._link(event.session_id, Link(event.parent_session_id, event.at, False))
        elif isinstance(event, Rotated):
            if self._link(event.new_session_id, Link(event.session_id, event.at, True)):
                self._successors.setdefault(event.session_id, event.new_session_id)
        elif isinstance(event, Revoked) and event.session_id not in self._revoked:
            self._revoked[event.session_id] = event

    def _link(self, child: str, link: Link) -> bool:
        if child in self._links:
            return False  # the first parent stands: a later claim cannot rewrite lineage
        self._links[child] = link
        self._children[link.parent] = self._children.get(link.parent, 0) + 1
        return True

    def _later_ids(self, session_id: str) -> Iterator[tuple[str, Link]]:
        """The ids ``session_id`` was rotated to, in order, with their links."""
        seen, current = {session_id}, session_id
        for _ in range(MAX_DEPTH):
            nxt = self._successors.get(current)
            if nxt is None or nxt in seen:
                return
            link = self._links.get(nxt)
            if link is None:
                return
            yield nxt, link
            seen.add(nxt)
            current = nxt

    def rotated_from(self, session_id: str) -> str | None:
        """The id this one replaced, if it came from a rotation."""
        link = self._links.get(session_id)
        return link.parent if link is not None and link.rotation else None

    def lineage(self, session_id: str) -> Iterator[tuple[str, Link]]:
        """(ancestor, the link that leads to it), nearest first; cycle-safe."""
        seen = {session_id}
        current = session_id
        for _ in range(MAX_DEPTH):
            link = self._links.get(current)
            if link is None or link.parent in seen:
                return
            yield link.parent, link
            seen.add(link.parent)
            current = link.parent

    def revoked_by(self, state: SessionState) -> str | None:
        """Why the session is dead though its own state says alive, or None."""
        for ancestor, link in self.lineage(state.session_id):
            revoked = self._revoked.get(ancestor)
            if revoked is not None:
                return f"ancestor session {ancestor} revoked ({revoked.reason})"
            # The ancestor lives on under the ids it was rotated to: revoking one of
            # those revokes it. Minting a session from an id already rotated away is
            # minting from a dead id.
            for later, rotation in self._later_ids(ancestor):
                if later == state.session_id:
                    break  # its own id: its own state speaks for it
                if not link.rotation and rotation.at <= link.at:
                    return f"minted from {ancestor} after it was rotated to {later}"
                revoked = self._revoked.get(later)
                if revoked is not None:
                    return (f"ancestor session {ancestor} revoked as {later} "
                            f"({revoked.reason})")
        # The ids come from the session's own state, not from links: a rotation
        # naming an id that already had a login of its own does not make it excepted.
        own_ids = {state.session_id, *state.former_ids}
        for event in self._users.get(state.user_id, ()):
            if state.born_at < event.at and event.except_session_id not in own_ids:
                return f"all sessions of the user revoked ({event.reason})"
        return None

    def prune(self, now: Millis) -> int:
        """Forget what no living session can be touched by; the count forgotten.

        A session dies one absolute timeout after its login at the latest, and it
        logs in before it is created, linked or rotated: so a user revocation, a link
        and a revocation older than that touch only dead sessions, once no younger
        link still leads through them.
        """
        horizon = now - self.policy.absolute_timeout
        before = len(self)
        for user, events in list(self._users.items()):
            kept = [e for e in events if e.at > horizon]
            if kept:
                self._users[user] = kept
            else:
                del self._users[user]
        for child, link in list(self._links.items()):
            # A rotation link also stays while the old id has other children: it
            # tells which of them were minted from an id already dead.
            if link.at <= horizon and not self._children.get(child) and not (
                    link.rotation and self._children.get(link.parent, 0) > 1):
                del self._links[child]
                self._forget_child_of(link.parent)
                if self._successors.get(link.parent) == child:
                    del self._successors[link.parent]
        for session_id, event in list(self._revoked.items()):
            # Kept while a link leads through it: a child of it, or its rotation from
            # an older id (whose children it revokes).
            if event.at <= horizon and not self._children.get(session_id) and (
                    session_id not in self._links):
                del self._revoked[session_id]
        return before - len(self)

    def _forget_child_of(self, parent: str) -> None:
        left = self._children[parent] - 1
        if left:
            self._children[parent] = left
        else:
            del self._children[parent]
