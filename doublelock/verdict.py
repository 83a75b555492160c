"""The decision: allow, deny or step up, taken at the moment of the action."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum

from doublelock.events import Intent, Millis
from doublelock.policy import ActionRule, Policy
from doublelock.revocations import Revocations
from doublelock.session import SessionState, Status


class Verdict(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    STEP_UP = "step_up"


class Reason(StrEnum):
    """Why; when several rules fail, the first in this order is reported."""

    OK = "ok"
    MALFORMED = "malformed"
    DUPLICATE_INTENT = "duplicate_intent"
    STALE_INTENT = "stale_intent"
    CLOCK_SKEW = "clock_skew"
    STATE_UNAVAILABLE = "state_unavailable"
    UNKNOWN_SESSION = "unknown_session"
    REVOKED = "revoked"
    EXPIRED_ABSOLUTE = "expired_absolute"
    EXPIRED_IDLE = "expired_idle"
    CONTEXT_MISMATCH = "context_mismatch"
    REAUTH_REQUIRED = "reauth_required"
    # Given by the SDK in the application, never by the worker: why no decision of
    # the worker's could be acted on. Each one is a deny.
    NO_DECISION = "no_decision"
    DECISION_EXPIRED = "decision_expired"
    BAD_SIGNATURE = "bad_signature"
    DECISION_MISMATCH = "decision_mismatch"
    BROKER_ERROR = "broker_error"


@dataclass(frozen=True, slots=True)
class Decision:
    intent_id: str
    session_id: str
    user_id: str
    action: str
    verdict: Verdict
    reason: Reason
    decided_at: Millis
    valid_until: Millis
    policy_version: str
    # Evidence, measured at decided_at; None where there is no session to measure.
    session_age_ms: Millis | None = None
    idle_ms: Millis | None = None
    reauth_age_ms: Millis | None = None
    detail: str = ""
    # Re-emitted after a crash: the decision first taken for this intent, again.
    redelivery: bool = False
    # HMAC-SHA256 by the worker (doublelock/signing.py); empty when it signs nothing.
    key_id: str = ""
    signature: bytes = b""
    # On a step_up, what the action demands (RFC 9470's max_age and acr level).
    max_auth_age_ms: Millis | None = None
    min_auth_level: int | None = None
    # Evidence: how long the session had been dead (ended, or past a timeout).
    dead_for_ms: Millis | None = None
    # The intent's nonce, set when the decision is emitted (signed).
    nonce: str = ""

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW


def _unmapped(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    # "::ffff:198.51.100.20" is an IPv4 client seen by a dual-stack server: compare it
    # as IPv4, or every such address would share one IPv6 /64.
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def same_ip(bound: str, seen: str, mode: str) -> bool:
    if mode == "off":
        return True
    if mode == "exact" or bound == seen:
        return bound == seen
    try:  # prefix24: the same /24 for IPv4, the same /64 for IPv6
        a, b = _unmapped(bound), _unmapped(seen)
    except ValueError:
        return False
    if a.version != b.version:
        return False
    bits = 24 if a.version == 4 else 64
    net = ipaddress.ip_network(f"{a}/{bits}", strict=False)
    return b in net


def _context_problem(state: SessionState, intent: Intent, policy: Policy) -> str | None:
    if intent.user_id != state.user_id:
        return f"session belongs to user {state.user_id!r}, not {intent.user_id!r}"
    if policy.device_binding == "exact" and intent.device_id != state.device_id:
        return f"device {intent.device_id!r} is not the session's {state.device_id!r}"
    if not same_ip(state.ip, intent.ip, policy.ip_binding):
        return f"ip {intent.ip!r} does not match the session's {state.ip!r} ({policy.ip_binding})"
    return None


def deny(
    intent_id: str,
    session_id: str,
    user_id: str,
    action: str,
    reason: Reason,
    now: Millis,
    policy: Policy,
    detail: str = "",
) -> Decision:
    """A deny with no session evidence: malformed or undecidable input."""
    return Decision(
        intent_id, session_id, user_id, action, Verdict.DENY, reason,
        decided_at=now, valid_until=now, policy_version=policy.version, detail=detail,
    )


def deny_duplicate(intent: Intent, first: Decision, now: Millis, policy: Policy) -> Decision:
    """The answer to an intent id already decided: never a second allow."""
    return deny(intent.intent_id, intent.session_id, intent.user_id, intent.action,
                Reason.DUPLICATE_INTENT, now, policy,
                f"intent already decided at {first.decided_at}: {first.verdict.value} "
                f"({first.reason.value})")


def is_duplicate(first: Decision, now: Millis, policy: Policy) -> bool:
    return now - first.decided_at < policy.dedupe_window


def decide(
    state: SessionState | None,
    intent: Intent,
    policy: Policy,
    now: Millis,
    *,
    live: bool = True,
    revocations: Revocations | None = None,
) -> Decision:
    """Decide ``intent`` against the session as it is at ``now``.

    Live mode ``now`` is the worker's clock; a replay passes the intent's own time
    and ``live=False`` (then the intent can be neither stale nor skewed).
    ``revocations`` holds what kills sessions across partitions: user-wide
    revocations and revoked ancestors.
    """

    def verdict(
        v: Verdict, reason: Reason, detail: str = "", until: Millis | None = None,
        rule: ActionRule | None = None, dead_since: Millis | None = None,
    ) -> Decision:
        if state is None:
            evidence: tuple[Millis | None, ...] = (None, None, None)
        else:
            evidence = (now - state.login_at, now - state.last_activity, now - state.auth_time)
        return Decision(
            intent.intent_id, intent.session_id, intent.user_id, intent.action, v, reason,
            decided_at=now,
            valid_until=now if until is None else until,
            policy_version=policy.version,
            session_age_ms=evidence[0], idle_ms=evidence[1], reauth_age_ms=evidence[2],
            detail=detail,
            max_auth_age_ms=None if rule is None else rule.reauth_within,
            min_auth_level=None if rule is None else rule.min_auth_level,
            dead_for_ms=None if dead_since is None else max(0, now - dead_since),
        )

    if live:
        if now - intent.occurred_at > policy.intent_max_age:
            return verdict(Verdict.DENY, Reason.STALE_INTENT,
                           f"intent is {now - intent.occurred_at} ms old")
        if intent.occurred_at - now > policy.skew_tolerance:
            return verdict(Verdict.DENY, Reason.CLOCK_SKEW,
                           f"intent is {intent.occurred_at - now} ms ahead of the clock")
    if state is None:
        return verdict(Verdict.DENY, Reason.UNKNOWN_SESSION)
    if now + policy.skew_tolerance < state.login_at:
        return verdict(Verdict.DENY, Reason.UNKNOWN_SESSION, "the session begins later")
    if state.status is not Status.ACTIVE:
        if state.status is Status.EXPIRED:
            return verdict(Verdict.DENY, Reason.EXPIRED_ABSOLUTE, "ended by the identity provider",
                           dead_since=state.ended_at)
        return verdict(Verdict.DENY, Reason.REVOKED, state.end_reason or state.status.value,
                       dead_since=state.ended_at)
    killed = None if revocations is None else revocations.revoked_by(state)
    if killed is not None:
        return verdict(Verdict.DENY, Reason.REVOKED, killed)
    absolute_end = state.absolute_end(policy)
    if now >= absolute_end:
        return verdict(Verdict.DENY, Reason.EXPIRED_ABSOLUTE, dead_since=absolute_end)
    idle_end = state.idle_end(policy)
    if now >= idle_end:
        return verdict(Verdict.DENY, Reason.EXPIRED_IDLE, dead_since=idle_end)
    problem = _context_problem(state, intent, policy)
    if problem is not None:
        return verdict(Verdict.DENY, Reason.CONTEXT_MISMATCH, problem)
    until = min(absolute_end, idle_end, now + policy.decision_ttl)
    rule = policy.rule_for(intent.action)
    if rule is not None:
        if rule.min_auth_level is not None and state.auth_level < rule.min_auth_level:
            return verdict(Verdict.STEP_UP, Reason.REAUTH_REQUIRED,
                           f"needs auth level {rule.min_auth_level}, has {state.auth_level}",
                           rule=rule)
        if rule.reauth_within is not None:
            fresh_until = state.auth_time + rule.reauth_within
            if now >= fresh_until:
                return verdict(Verdict.STEP_UP, Reason.REAUTH_REQUIRED,
                               f"needs authentication within {rule.reauth_within} ms",
                               rule=rule)
            until = min(until, fresh_until)
    return verdict(Verdict.ALLOW, Reason.OK, until=until)
