"""``doublelock decide``: replay a scenario through the decision core.

The clock is event time: each intent is decided at its own ``occurred_at``, against
the state built from the lines before it, exactly as the worker would have.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any, TextIO

from doublelock.errors import RejectedEvent
from doublelock.events import Intent, LifecycleEvent, Millis, Rotated, UserSessionsRevoked
from doublelock.policy import Policy
from doublelock.revocations import Revocations
from doublelock.session import Early, SessionState, step, successor
from doublelock.verdict import Decision, Reason, decide, deny, deny_duplicate, is_duplicate
from workers.scenario import format_instant, read_scenario

log = logging.getLogger(__name__)


def _malformed_intent(number: int, obj: Any, detail: str, now: Millis,
                      policy: Policy) -> Decision:
    """The deny a live worker gives an intent it cannot read, identified as far as can be."""
    def text(name: str, default: str = "") -> str:
        value = obj.get(name)
        return value if isinstance(value, str) else default

    return deny(text("intent_id", f"line-{number}"), text("session_id"), text("user_id"),
                text("action"), Reason.MALFORMED, now, policy, detail)


class Replay:
    """The worker's state in one process: sessions, cross-partition revocations and
    the intents already decided, fed in the scenario's order."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.sessions: dict[str, SessionState | Early] = {}
        self.revocations = Revocations(policy)
        self.decided: dict[tuple[str, str], Decision] = {}

    def apply(self, event: LifecycleEvent) -> None:
        """Raises RejectedEvent as the worker's sessions agent would."""
        self.revocations.apply_lineage(event)  # the worker learns lineage from every partition
        slot = self.sessions.get(event.session_id)
        new_slot, held = step(slot, event, self.policy)
        if new_slot is not None:
            self.sessions[event.session_id] = new_slot
        if isinstance(event, Rotated) and isinstance(slot, SessionState):
            heir = successor(slot, event)
            heir_slot, _ = step(self.sessions.get(heir.session_id), heir, self.policy)
            if heir_slot is not None:
                self.sessions[heir.session_id] = heir_slot
        if held is not None:
            raise held

    def decide(self, intent: Intent, now: Millis, live: bool) -> Decision:
        key = (intent.session_id, intent.intent_id)
        first = self.decided.get(key)
        if first is not None and is_duplicate(first, now, self.policy):
            return deny_duplicate(intent, first, now, self.policy)
        slot = self.sessions.get(intent.session_id)
        state = slot if isinstance(slot, SessionState) else None
        decision = decide(state, intent, self.policy, now, live=live,
                          revocations=self.revocations)
        self.decided[key] = decision
        return decision


def replay(source: TextIO, policy: Policy) -> Iterator[tuple[int, Decision | RejectedEvent]]:
    """Decisions for the scenario's intents, and the lines it rejected, in order.

    Like the worker, an intent line that cannot be used still gets one decision:
    deny ``malformed``, at the time of the last usable line.
    """
    state = Replay(policy)
    clock: Millis = 0
    for number, line, obj in read_scenario(source):
        if isinstance(line, RejectedEvent):
            yield number, line
            if isinstance(obj, dict) and obj.get("type") == "intent":
                yield number, _malformed_intent(number, obj, line.message, clock, policy)
            continue
        clock = max(clock, line.occurred_at if isinstance(line, Intent) else line.at)
        if isinstance(line, Intent):
            yield number, state.decide(line, line.occurred_at, live=False)
        elif isinstance(line, UserSessionsRevoked):
            state.revocations.apply_user(line)
        else:
            try:
                state.apply(line)
            except RejectedEvent as exc:
                yield number, exc


def decision_json(decision: Decision) -> dict[str, Any]:
    return {
        "intent_id": decision.intent_id,
        "verdict": decision.verdict.value,
        "reason": decision.reason.value,
        "session_id": decision.session_id,
        "user_id": decision.user_id,
        "action": decision.action,
        "decided_at": format_instant(decision.decided_at),
        "valid_until": format_instant(decision.valid_until),
        "policy_version": decision.policy_version,
        "evidence": {
            "session_age_ms": decision.session_age_ms,
            "idle_ms": decision.idle_ms,
            "reauth_age_ms": decision.reauth_age_ms,
            "detail": decision.detail,
        },
    }


def run(source: TextIO, policy: Policy, out: TextIO, err: TextIO) -> int:
    """Print one JSON decision per intent; report rejected lines on ``err``."""
    rejected = 0
    for number, result in replay(source, policy):
        if isinstance(result, RejectedEvent):
            rejected += 1
            err.write(f"line {number}: rejected ({result.kind}): {result.message}\n")
        else:
            out.write(json.dumps(decision_json(result)) + "\n")
    return rejected
