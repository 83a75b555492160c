"""Property tests of the pure decision core: ``apply`` (session lifecycle) and ``decide``.

Histories are random sequences of lifecycle events for one or two sessions, on a minute
grid (with 1 ms jitter) around 2026-04-07 so that boundaries are hit often; policies are
random too (timeouts, bindings, ``[[actions]]`` rules).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from itertools import pairwise
from typing import Any, Final, TypeVar

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from doublelock.errors import PolicyError, RejectedEvent
from doublelock.events import (
    DAY,
    EARLIEST,
    HOUR,
    LATEST,
    MINUTE,
    SECOND,
    Activity,
    Expired,
    Heartbeat,
    Intent,
    LifecycleEvent,
    LoggedOut,
    Millis,
    Reauthenticated,
    Revoked,
    SessionCreated,
    check_instant,
    validate_event,
    validate_intent,
)
from doublelock.policy import ActionRule, Policy, parse_policy
from doublelock.session import SessionState, Status, apply
from doublelock.verdict import Decision, Reason, Verdict, decide

BASE: Final[Millis] = int(datetime(2026, 4, 7, tzinfo=UTC).timestamp()) * SECOND
SIDS: Final = ("S1", "S2")
USERS: Final = ("U1", "U2")
DEVICES: Final = ("D1", "D2")
IPS: Final = (
    "203.0.113.7", "203.0.113.99", "198.51.100.7",
    "2001:db8::1", "2001:db8::ffff:2", "2001:db8:1::1", "::ffff:203.0.113.50", "not-an-ip",
)
ACTIONS: Final = (
    "payments.transfer", "payment.x", "account.delete", "report.view", "role.edit",
    "data.export", "repo.delete", "blog.publish", "Account.Delete",  # names match any case
)
PATTERNS: Final = ("payments.*", "*.delete", "account.delete", "role.*", "data.export", "*")
TERMINAL: Final = (LoggedOut, Revoked, Expired)
# The documented order in which failing rules are reported (malformed never reaches decide).
SPEC_ORDER: Final = (
    Reason.STALE_INTENT, Reason.CLOCK_SKEW, Reason.UNKNOWN_SESSION, Reason.REVOKED,
    Reason.EXPIRED_ABSOLUTE, Reason.EXPIRED_IDLE, Reason.CONTEXT_MISMATCH,
    Reason.REAUTH_REQUIRED,
)

PROPERTY = settings(max_examples=200, deadline=None)
CHEAP = settings(max_examples=300, deadline=None)
THOROUGH = settings(max_examples=400, deadline=None)

# -- strategies ----------------------------------------------------------------------
#
# Values are decoded from small tuples of integers by plain functions: an order of magnitude
# cheaper to generate than nested composite strategies, and they still shrink towards plain
# values (index 0 is the plainest choice everywhere).

T = TypeVar("T")
JITTERS: Final = (0, 1, -1, 30 * SECOND, 0, 0)
LAGS: Final = (0, 1, MINUTE, 10 * MINUTE, HOUR, 3 * HOUR, 0)
WINDOW: Final = 16 * 60 * len(JITTERS)  # instant codes: minutes after BASE x jitters
EVENT_KINDS: Final = (
    "activity", "heartbeat", "reauthenticated", "activity", "created", "logged_out",
    "revoked", "expired", "activity", "heartbeat", "reauthenticated",
)  # weighted towards the events that keep a session alive


class Pick:
    """Successive choices out of one integer (mixed radix). The code is scrambled first, so
    that Hypothesis' preference for small integers does not always pick the first option,
    while the code 0 still means the plainest choice everywhere."""

    def __init__(self, code: int) -> None:
        self.code = code * 0x9E3779B97F4A7C15 % 2**64

    def __call__(self, options: Sequence[T]) -> T:
        self.code, index = divmod(self.code, len(options))
        return options[index]


def instant(code: int) -> Millis:
    minute, jitter = divmod(code, len(JITTERS))
    return BASE + minute * MINUTE + JITTERS[jitter]


instant_codes = st.integers(0, WINDOW - 1)
choices = st.integers(0, 2**64 - 1)
times = instant_codes.map(instant)
levels = st.integers(1, 3)
maybe_ip = st.none() | st.sampled_from(IPS)
maybe_device = st.none() | st.sampled_from(DEVICES)


def make_event(kind: str, at: Millis, pick: Pick, sids: Sequence[str]) -> LifecycleEvent:
    sid = pick(sids)
    if kind == "activity":
        return Activity(sid, at, pick((None, *IPS)), pick((None, *DEVICES)))
    if kind == "heartbeat":
        return Heartbeat(sid, at)
    if kind == "reauthenticated":
        return Reauthenticated(sid, at, at - pick(LAGS), pick((2, 1, 3)), pick((None, *IPS)),
                               pick((None, *DEVICES)))
    if kind == "created":
        expires = pick((None, None, None, 8 * HOUR, HOUR, 10 * MINUTE, 0, -MINUTE))
        return SessionCreated(
            sid, at, pick(USERS), at - pick(LAGS), pick((2, 1, 3)), pick(IPS), pick(DEVICES),
            None if expires is None else at + expires,
        )
    if kind == "revoked":
        return Revoked(sid, at, pick(("admin", "password_reset")))
    return {"logged_out": LoggedOut, "expired": Expired}[kind](sid, at)


def events_of(kinds: Sequence[str], sids: Sequence[str] = SIDS) -> st.SearchStrategy[Any]:
    return st.tuples(st.integers(0, len(kinds) - 1), instant_codes, choices).map(
        lambda c: make_event(kinds[c[0]], instant(c[1]), Pick(c[2]), sids))


lifecycle_events = events_of(EVENT_KINDS)
terminal_events = events_of(("logged_out", "revoked", "expired"), ("S1",))


def created_events(sid: str) -> st.SearchStrategy[Any]:
    return events_of(("created",), (sid,))


def reauth_events(sid: str) -> st.SearchStrategy[Any]:
    return events_of(("reauthenticated",), (sid,))


def _history(
    s1: int, first: LifecycleEvent, second: LifecycleEvent | None,
    tail: list[LifecycleEvent], in_time_order: bool,
) -> list[LifecycleEvent]:
    head = [first] if s1 < 9 else []  # usually S1 is created first
    if second is not None:
        head.append(second)
    return head + (sorted(tail, key=lambda e: e.at) if in_time_order else tail)


histories = st.tuples(
    st.integers(0, 9), created_events("S1"), st.none() | created_events("S2"),
    st.lists(lifecycle_events, max_size=16), st.booleans(),
).map(lambda c: _history(*c))


def make_rule(mask: int, within: int, level: int, jitter: int) -> ActionRule:
    return ActionRule(
        match=tuple(p for i, p in enumerate(PATTERNS) if mask >> i & 1),
        reauth_within=None if within < 0 else max(0, within * MINUTE + (0, 1, -1)[jitter]),
        min_auth_level=level or None,
    )


action_rules = st.tuples(
    st.integers(1, 2 ** len(PATTERNS) - 1), st.integers(-1, 120), st.integers(0, 3),
    st.integers(0, 2),
).map(lambda c: make_rule(*c))


def make_policy(
    absolute: int, idle: int, pick: Pick, rules: list[ActionRule], bindings: bool
) -> Policy:
    return Policy(
        absolute_timeout=absolute * MINUTE + pick((0, 1, -1)),
        idle_timeout=idle * MINUTE + pick((0, 1, -1)),
        skew_tolerance=pick((2 * SECOND, 0, MINUTE)),
        intent_max_age=pick((30 * SECOND, 0, 10 * MINUTE)),
        ip_binding=pick(("exact", "prefix24", "off")) if bindings else "off",
        device_binding=pick(("exact", "off")) if bindings else "off",
        decision_ttl=pick((10 * SECOND, 1, SECOND, 10 * MINUTE, 4 * HOUR)),
        actions=tuple(rules),
        version="test-policy",
    )


def policies(rules: bool = True, bindings: bool = True) -> st.SearchStrategy[Policy]:
    return st.tuples(
        st.sampled_from((8 * 60, 60, 12 * 60, 120)) | st.integers(1, 12 * 60),
        st.sampled_from((30, 15, 5, 60)) | st.integers(1, 3 * 60), choices,
        st.lists(action_rules, max_size=3) if rules else st.just([]),
    ).map(lambda c: make_policy(c[0], c[1], Pick(c[2]), c[3], bindings))


def make_intent(sid: str, at: Millis, pick: Pick) -> Intent:
    return Intent(
        f"I-{pick(range(100))}", sid, pick(USERS), pick(ACTIONS), "res", at, pick(IPS),
        pick(DEVICES), pick(("ui", "api", "ws", "cli")), "console",
    )


intents = st.tuples(instant_codes, choices).map(
    lambda c: make_intent("S1", instant(c[0]), Pick(c[1])))

DecisionCase = tuple[Policy, SessionState | None, Intent, Millis, bool]


def make_case(
    policy: Policy, history: list[LifecycleEvent], now: Millis, pick: Pick, live: bool
) -> DecisionCase:
    """S1's state after the history, and an intent: often from the session's own context,
    often at an edge of its life, so that allows and boundaries are common."""
    state = fold(history, policy).get("S1")
    intent = make_intent("S1", now, pick)
    if state is not None and pick((True, False)):
        intent = replace(intent, user_id=state.user_id, ip=state.ip, device_id=state.device_id)
    if state is not None and pick((True, False)):  # near an edge of the session's life
        edge = pick((state.last_activity, state.idle_end(policy), state.absolute_end(policy),
                     state.auth_time))
        now = edge + pick((0, -1, 1, -MINUTE, MINUTE, 10 * MINUTE))
    if live:  # mostly fresh, sometimes stale or ahead of the clock
        occurred_at = now + pick((0, 0, -SECOND, SECOND, -HOUR, HOUR))
    else:  # replay: the intent's own time does not matter, the clock is ``now``
        occurred_at = now - pick((0, MINUTE, HOUR, -HOUR))
    return policy, state, replace(intent, occurred_at=occurred_at), now, live


decisions = st.tuples(policies(), histories, times, choices, st.booleans()).map(
    lambda c: make_case(c[0], c[1], c[2], Pick(c[3]), c[4]))


# -- helpers -------------------------------------------------------------------------


def fold(
    events: Sequence[LifecycleEvent], policy: Policy, start: dict[str, SessionState] | None = None
) -> dict[str, SessionState]:
    """What the worker's table holds after ``events``; unknown-session events are dropped."""
    sessions = dict(start or {})
    for event in events:
        try:
            sessions[event.session_id] = apply(sessions.get(event.session_id), event, policy)
        except RejectedEvent as exc:
            assert exc.kind == "unknown_session"
            assert event.session_id not in sessions
            assert not isinstance(event, SessionCreated)
    return sessions


def trace(events: Sequence[LifecycleEvent], policy: Policy, sid: str) -> list[SessionState]:
    """The session ``sid`` after each event that touched it, from its creation on."""
    states: list[SessionState] = []
    state: SessionState | None = None
    for event in events:
        if event.session_id != sid:
            continue
        try:
            state = apply(state, event, policy)
        except RejectedEvent:
            continue
        states.append(state)
    return states


def intent_for(state: SessionState, at: Millis, action: str = "report.view") -> Intent:
    """An intent from the session's own user, ip and device."""
    return Intent("I", state.session_id, state.user_id, action, "res", at, state.ip,
                  state.device_id, "ui", "console")


def live_session(policy: Policy, at: Millis = BASE, **extra: object) -> SessionState:
    created = SessionCreated("S1", at, "U1", at, 2, "203.0.113.7", "D1")
    return apply(None, replace(created, **extra), policy)  # type: ignore[arg-type]


def oracle_same_ip(bound: str, seen: str, mode: str) -> bool:
    if mode == "off" or bound == seen:
        return True
    if mode == "exact":
        return False
    try:
        a, b = ipaddress.ip_address(bound), ipaddress.ip_address(seen)
    except ValueError:
        return False
    # An IPv4-mapped IPv6 address is that IPv4 client (seen by a dual-stack server).
    a = getattr(a, "ipv4_mapped", None) or a
    b = getattr(b, "ipv4_mapped", None) or b
    prefix = 3 if a.version == 4 else 8  # /24 or /64, in bytes
    return a.version == b.version and a.packed[:prefix] == b.packed[:prefix]


def first_rule(policy: Policy, action: str) -> ActionRule | None:
    for rule in policy.actions:
        if any(fnmatchcase(action.lower(), pattern.lower()) for pattern in rule.match):
            return rule
    return None


def absolute_end(state: SessionState, policy: Policy) -> Millis:
    end = state.login_at + policy.absolute_timeout
    return end if state.expires_at is None else min(end, state.expires_at)


def oracle_reason(
    state: SessionState | None, intent: Intent, policy: Policy, now: Millis, live: bool
) -> Reason:
    """Every rule evaluated independently; the first failing one in the documented order."""
    failing: list[Reason] = []
    if live and now - intent.occurred_at > policy.intent_max_age:
        failing.append(Reason.STALE_INTENT)
    if live and intent.occurred_at - now > policy.skew_tolerance:
        failing.append(Reason.CLOCK_SKEW)
    if state is None or now + policy.skew_tolerance < state.login_at:
        failing.append(Reason.UNKNOWN_SESSION)  # no session, or not yet (its login is later)
    if state is not None:
        if state.status in (Status.LOGGED_OUT, Status.REVOKED):
            failing.append(Reason.REVOKED)
        if state.status is Status.EXPIRED or now >= absolute_end(state, policy):
            failing.append(Reason.EXPIRED_ABSOLUTE)
        if now >= state.last_activity + policy.idle_timeout:
            failing.append(Reason.EXPIRED_IDLE)
        if (
            intent.user_id != state.user_id
            or (policy.device_binding == "exact" and intent.device_id != state.device_id)
            or not oracle_same_ip(state.ip, intent.ip, policy.ip_binding)
        ):
            failing.append(Reason.CONTEXT_MISMATCH)
        rule = first_rule(policy, intent.action)
        if rule is not None and (
            (rule.min_auth_level is not None and state.auth_level < rule.min_auth_level)
            or (rule.reauth_within is not None and now >= state.auth_time + rule.reauth_within)
        ):
            failing.append(Reason.REAUTH_REQUIRED)
    return min(failing, key=SPEC_ORDER.index) if failing else Reason.OK


def model_alive(events: Sequence[LifecycleEvent], sid: str, policy: Policy, now: Millis) -> bool:
    """Reference model, straight from the event list: may session ``sid`` act at ``now``?"""
    mine = [e for e in events if e.session_id == sid]
    births = [i for i, e in enumerate(mine) if isinstance(e, SessionCreated)]
    if not births:
        return False
    login = mine[births[0]]
    assert isinstance(login, SessionCreated)
    later = mine[births[0] + 1:]
    if any(isinstance(e, TERMINAL) for e in later):
        return False
    if now + policy.skew_tolerance < login.auth_time:
        return False  # before the login
    hard_end = login.auth_time + policy.absolute_timeout
    if login.expires_at is not None:
        hard_end = min(hard_end, login.expires_at)
    if now >= hard_end:
        return False
    freshest, last = login.auth_time, max(login.at, login.auth_time)
    for e in later:
        if isinstance(e, Activity) and last <= e.at < last + policy.idle_timeout:
            last = e.at
        elif isinstance(e, Reauthenticated) and e.auth_time > freshest:
            freshest, last = e.auth_time, max(last, e.auth_time)
    return now < last + policy.idle_timeout


# -- lifecycle: apply ----------------------------------------------------------------


@PROPERTY
@given(policies(), histories, st.sampled_from(SIDS), times)
def test_heartbeat_never_changes_a_session(
    policy: Policy, history: list[LifecycleEvent], sid: str, at: Millis
) -> None:
    state = fold(history, policy).get(sid)
    assume(state is not None)
    assert apply(state, Heartbeat(sid, at), policy) == state


@CHEAP
@given(policies(), lifecycle_events)
def test_no_event_but_created_applies_to_an_unknown_session(
    policy: Policy, event: LifecycleEvent
) -> None:
    if isinstance(event, SessionCreated):
        state = apply(None, event, policy)
        assert state.alive
        assert state.login_at == state.auth_time == event.auth_time
        assert state.last_activity == max(event.at, event.auth_time)
        assert (state.ip, state.device_id) == (event.ip, event.device_id)
    else:
        with pytest.raises(RejectedEvent) as info:
            apply(None, event, policy)
        assert info.value.kind == "unknown_session"


@PROPERTY
@given(policies(), histories, created_events("S1"))
def test_repeated_created_neither_resets_nor_revives(
    policy: Policy, history: list[LifecycleEvent], again: SessionCreated
) -> None:
    state = fold(history, policy).get("S1")
    assume(state is not None)
    assert apply(state, again, policy) == state


STATUS_AFTER: Final = {
    LoggedOut: Status.LOGGED_OUT, Revoked: Status.REVOKED, Expired: Status.EXPIRED,
}


@PROPERTY
@given(policies(), histories, terminal_events)
def test_terminal_event_ends_a_live_session(
    policy: Policy, history: list[LifecycleEvent], event: LifecycleEvent
) -> None:
    state = fold(history, policy).get("S1")
    assume(state is not None and state.alive)
    ended = apply(state, event, policy)
    assert ended.status is STATUS_AFTER[type(event)]
    assert not ended.alive
    assert ended.ended_at == event.at
    assert ended.end_reason == (event.reason if isinstance(event, Revoked) else None)


@PROPERTY
@given(policies(), histories, terminal_events, st.lists(lifecycle_events, max_size=15),
       intents, times)
def test_a_dead_session_stays_dead_whatever_follows(
    policy: Policy, history: list[LifecycleEvent], terminal: LifecycleEvent,
    later: list[LifecycleEvent], intent: Intent, now: Millis,
) -> None:
    dead = fold([*history, terminal], policy).get("S1")
    assume(dead is not None)
    assert dead is not None
    assert not dead.alive
    after = fold(later, policy, {"S1": dead})["S1"]
    assert after == dead
    reason = Reason.EXPIRED_ABSOLUTE if dead.status is Status.EXPIRED else Reason.REVOKED
    if now + policy.skew_tolerance < dead.login_at:
        reason = Reason.UNKNOWN_SESSION  # an intent from before the login
    for live in (False, True):
        decision = decide(after, replace(intent, occurred_at=now), policy, now, live=live)
        assert (decision.verdict, decision.reason) == (Verdict.DENY, reason)


@PROPERTY
@given(policies(), histories)
def test_state_fields_are_monotone(policy: Policy, history: list[LifecycleEvent]) -> None:
    for sid in SIDS:
        states = trace(history, policy, sid)
        for before, after in pairwise(states):
            assert after.last_activity >= before.last_activity
            assert after.auth_time >= before.auth_time
            assert after.auth_time >= after.login_at
            assert (after.session_id, after.user_id, after.login_at, after.expires_at) == (
                before.session_id, before.user_id, before.login_at, before.expires_at)
            if not before.alive:
                assert after == before


@PROPERTY
@given(policies(), histories)
def test_absolute_end_is_fixed_at_login(policy: Policy, history: list[LifecycleEvent]) -> None:
    login = next((e for e in history if isinstance(e, SessionCreated) and e.session_id == "S1"),
                 None)
    states = trace(history, policy, "S1")
    assume(login is not None)
    assert login is not None
    expected = login.auth_time + policy.absolute_timeout
    if login.expires_at is not None:
        expected = min(expected, login.expires_at)
    assert {s.absolute_end(policy) for s in states} == {expected}


@PROPERTY
@given(policies(), histories, st.lists(lifecycle_events, max_size=15), st.integers(0, DAY))
def test_nothing_revives_a_session_after_its_absolute_end(
    policy: Policy, history: list[LifecycleEvent], later: list[LifecycleEvent], late: Millis
) -> None:
    state = fold(history, policy).get("S1")
    assume(state is not None)
    assert state is not None
    now = absolute_end(state, policy) + late
    after = fold(later, policy, {"S1": state})["S1"]
    decision = decide(after, intent_for(after, now), policy, now, live=False)
    assert decision.verdict is Verdict.DENY
    if now + policy.skew_tolerance >= after.login_at:  # else: an expires_at before the login
        assert decision.reason in (Reason.REVOKED, Reason.EXPIRED_ABSOLUTE)


@PROPERTY
@given(policies(), histories, st.integers(0, 3 * HOUR), maybe_ip, maybe_device)
def test_activity_at_or_after_idle_end_never_revives(
    policy: Policy, history: list[LifecycleEvent], late: Millis, ip: str | None,
    device: str | None,
) -> None:
    state = fold(history, policy).get("S1")
    assume(state is not None and state.alive)
    assert state is not None
    at = state.idle_end(policy) + late
    after = apply(state, Activity("S1", at, ip, device), policy)
    assert after == state
    decision = decide(after, intent_for(after, at), policy, at, live=False)
    assert not decision.allowed


@PROPERTY
@given(policies(), histories, times, st.sampled_from((-1, 0)))
def test_activity_before_idle_end_moves_the_idle_clock(
    policy: Policy, history: list[LifecycleEvent], at: Millis, offset: int
) -> None:
    state = fold(history, policy).get("S1")
    assume(state is not None and state.alive)
    assert state is not None
    at = max(state.last_activity, min(at, state.idle_end(policy) + offset))
    after = apply(state, Activity("S1", at, "198.51.100.7", "D2"), policy)
    if at < state.idle_end(policy):
        assert after.last_activity == at
        assert (after.last_seen_ip, after.last_seen_device_id) == ("198.51.100.7", "D2")
        assert (after.ip, after.device_id) == (state.ip, state.device_id)  # never rebinds
    else:
        assert after == state


@PROPERTY
@given(policies(rules=False, bindings=False), st.integers(0, 5 * HOUR), st.integers(1, HOUR))
def test_reauth_resumes_an_idle_session_and_idle_runs_from_its_auth_time(
    policy: Policy, pause: Millis, lag: Millis
) -> None:
    state = live_session(policy)
    idle_end = state.idle_end(policy)
    auth_time = idle_end + pause  # the session sat idle past its idle end
    assume(auth_time + 1 < state.absolute_end(policy))
    # activity after the idle end changes nothing
    assert apply(state, Activity("S1", auth_time), policy) == state
    resumed = apply(state, Reauthenticated("S1", auth_time + lag, auth_time, 2), policy)
    assert resumed.auth_time == resumed.last_activity == auth_time
    for now, idle_ok in ((auth_time, True),
                         (auth_time + policy.idle_timeout - 1, True),
                         (auth_time + policy.idle_timeout, False)):
        expected = idle_ok and now < resumed.absolute_end(policy)
        decision = decide(resumed, intent_for(resumed, now), policy, now, live=False)
        assert decision.allowed is expected


@PROPERTY
@given(policies(), histories, st.integers(0, 10 * HOUR), levels, maybe_ip, maybe_device)
def test_an_older_or_equal_proof_changes_nothing(
    policy: Policy, history: list[LifecycleEvent], age: Millis, level: int, ip: str | None,
    device: str | None,
) -> None:
    state = fold(history, policy).get("S1")
    assume(state is not None)
    assert state is not None
    event = Reauthenticated("S1", state.auth_time + HOUR, state.auth_time - age, level, ip, device)
    assert apply(state, event, policy) == state


@PROPERTY
@given(policies(), histories, reauth_events("S1"), st.integers(1, 3 * HOUR))
def test_a_newer_proof_refreshes_and_rebinds(
    policy: Policy, history: list[LifecycleEvent], event: Reauthenticated, newer: Millis
) -> None:
    state = fold(history, policy).get("S1")
    assume(state is not None and state.alive)
    assert state is not None
    event = replace(event, auth_time=state.auth_time + newer)
    after = apply(state, event, policy)
    assert (after.auth_time, after.auth_level) == (event.auth_time, event.auth_level)
    assert after.last_activity == max(state.last_activity, event.auth_time)
    assert after.ip == (event.ip or state.ip)
    assert after.device_id == (event.device_id or state.device_id)
    assert after.absolute_end(policy) == state.absolute_end(policy)


@PROPERTY
@given(policies(), histories)
def test_sessions_do_not_affect_each_other(policy: Policy, history: list[LifecycleEvent]) -> None:
    together = fold(history, policy)
    for sid in SIDS:
        alone = fold([e for e in history if e.session_id == sid], policy)
        assert together.get(sid) == alone.get(sid)


# -- decisions -------------------------------------------------------------------------


@THOROUGH
@given(decisions)
def test_decide_reports_the_first_failing_rule(
    case: DecisionCase,
) -> None:
    policy, state, intent, now, live = case
    decision = decide(state, intent, policy, now, live=live)
    assert decision.reason is oracle_reason(state, intent, policy, now, live)


@PROPERTY
@given(decisions)
def test_verdict_and_reason_go_together(
    case: DecisionCase,
) -> None:
    policy, state, intent, now, live = case
    decision = decide(state, intent, policy, now, live=live)
    if decision.verdict is Verdict.ALLOW:
        assert decision.reason is Reason.OK
    elif decision.verdict is Verdict.STEP_UP:
        assert decision.reason is Reason.REAUTH_REQUIRED
    else:
        assert decision.reason not in (Reason.OK, Reason.REAUTH_REQUIRED)
    assert (decision.reason is Reason.OK) == decision.allowed


@PROPERTY
@given(decisions)
def test_allow_only_for_a_live_session_before_every_end(
    case: DecisionCase,
) -> None:
    policy, state, intent, now, live = case
    decision = decide(state, intent, policy, now, live=live)
    if not decision.allowed:
        return
    assert state is not None and state.status is Status.ACTIVE
    assert now < state.absolute_end(policy)
    assert now < state.login_at + policy.absolute_timeout
    assert state.expires_at is None or now < state.expires_at
    assert now < state.last_activity + policy.idle_timeout
    assert intent.user_id == state.user_id
    rule = first_rule(policy, intent.action)
    if rule is not None:
        assert rule.min_auth_level is None or state.auth_level >= rule.min_auth_level
        assert rule.reauth_within is None or now < state.auth_time + rule.reauth_within


@PROPERTY
@given(decisions)
def test_an_allow_is_valid_only_while_every_condition_holds(
    case: DecisionCase,
) -> None:
    policy, state, intent, now, live = case
    decision = decide(state, intent, policy, now, live=live)
    if not decision.allowed:
        return
    assert state is not None
    bound = min(state.absolute_end(policy), state.idle_end(policy), now + policy.decision_ttl)
    rule = first_rule(policy, intent.action)
    if rule is not None and rule.reauth_within is not None:
        bound = min(bound, state.auth_time + rule.reauth_within)
    assert decision.decided_at < decision.valid_until <= bound


@PROPERTY
@given(decisions)
def test_a_decision_echoes_its_intent_and_evidence(
    case: DecisionCase,
) -> None:
    policy, state, intent, now, live = case
    decision = decide(state, intent, policy, now, live=live)
    assert (decision.intent_id, decision.session_id, decision.user_id, decision.action) == (
        intent.intent_id, intent.session_id, intent.user_id, intent.action)
    assert decision.decided_at == now
    assert decision.policy_version == policy.version
    if state is not None:
        assert decision.session_age_ms == now - state.login_at
        assert decision.idle_ms == now - state.last_activity
        assert decision.reauth_age_ms == now - state.auth_time
    elif decision.reason is Reason.UNKNOWN_SESSION:
        assert (decision.session_age_ms, decision.idle_ms, decision.reauth_age_ms) == (
            None, None, None)


@CHEAP
@given(policies(), intents, times, st.booleans())
def test_an_unknown_session_is_never_allowed(
    policy: Policy, intent: Intent, now: Millis, live: bool
) -> None:
    decision = decide(None, replace(intent, occurred_at=now), policy, now, live=live)
    assert decision.verdict is Verdict.DENY
    assert decision.reason is Reason.UNKNOWN_SESSION


@PROPERTY
@given(decisions)
def test_replay_mode_is_never_stale_or_skewed(
    case: DecisionCase,
) -> None:
    policy, state, intent, now, _ = case
    decision = decide(state, intent, policy, now, live=False)
    assert decision.reason not in (Reason.STALE_INTENT, Reason.CLOCK_SKEW)


@THOROUGH
@given(policies(rules=False, bindings=False), histories, times, st.sampled_from(ACTIONS))
def test_decide_agrees_with_the_reference_model(
    policy: Policy, history: list[LifecycleEvent], now: Millis, action: str
) -> None:
    sessions = fold(history, policy)
    for sid in SIDS:
        state = sessions.get(sid)
        user = state.user_id if state is not None else "U1"
        intent = Intent("I", sid, user, action, "res", now, "198.51.100.7", "D9", "api", "app")
        decision = decide(state, intent, policy, now, live=False)
        assert decision.allowed is model_alive(history, sid, policy, now)


# -- explicit boundaries -------------------------------------------------------------

POLICY: Final = Policy(absolute_timeout=HOUR, idle_timeout=30 * MINUTE, decision_ttl=DAY,
                       ip_binding="off", device_binding="off")


def decide_at(state: SessionState, now: Millis, policy: Policy = POLICY,
              action: str = "report.view") -> Decision:
    return decide(state, intent_for(state, now, action), policy, now, live=False)


def test_exactly_at_the_absolute_end_is_expired() -> None:
    state = live_session(POLICY)
    for minute in (25, 50):  # activity keeps it from going idle, never extends it
        state = apply(state, Activity("S1", BASE + minute * MINUTE), POLICY)
    before = decide_at(state, BASE + HOUR - 1)
    assert (before.verdict, before.reason) == (Verdict.ALLOW, Reason.OK)
    assert before.valid_until == BASE + HOUR
    at = decide_at(state, BASE + HOUR)
    assert (at.verdict, at.reason) == (Verdict.DENY, Reason.EXPIRED_ABSOLUTE)


def test_expires_at_before_the_absolute_timeout_wins() -> None:
    state = live_session(POLICY, expires_at=BASE + 20 * MINUTE)
    assert decide_at(state, BASE + 20 * MINUTE - 1).allowed
    assert decide_at(state, BASE + 20 * MINUTE - 1).valid_until == BASE + 20 * MINUTE
    assert decide_at(state, BASE + 20 * MINUTE).reason is Reason.EXPIRED_ABSOLUTE


def test_absolute_timeout_runs_from_login_auth_time_not_creation() -> None:
    state = live_session(POLICY, at=BASE + 10 * MINUTE, auth_time=BASE)
    assert state.last_activity == BASE + 10 * MINUTE
    state = apply(state, Activity("S1", BASE + 35 * MINUTE), POLICY)
    assert decide_at(state, BASE + HOUR - 1).allowed
    assert decide_at(state, BASE + HOUR).reason is Reason.EXPIRED_ABSOLUTE


def test_exactly_at_the_idle_end_is_expired() -> None:
    state = apply(live_session(POLICY), Activity("S1", BASE + 5 * MINUTE), POLICY)
    assert decide_at(state, BASE + 35 * MINUTE - 1).allowed
    assert decide_at(state, BASE + 35 * MINUTE - 1).valid_until == BASE + 35 * MINUTE
    assert decide_at(state, BASE + 35 * MINUTE).reason is Reason.EXPIRED_IDLE


def test_creation_counts_as_the_first_activity() -> None:
    state = live_session(POLICY)
    assert decide_at(state, BASE + 30 * MINUTE - 1).allowed
    assert decide_at(state, BASE + 30 * MINUTE).reason is Reason.EXPIRED_IDLE


def test_activity_exactly_at_the_idle_end_is_too_late() -> None:
    state = live_session(POLICY)
    assert apply(state, Activity("S1", BASE + 30 * MINUTE), POLICY) == state
    moved = apply(state, Activity("S1", BASE + 30 * MINUTE - 1), POLICY)
    assert moved.last_activity == BASE + 30 * MINUTE - 1


def test_an_intent_from_before_the_login_finds_no_session() -> None:
    policy = Policy(skew_tolerance=2 * SECOND, ip_binding="off", device_binding="off")
    state = live_session(policy)
    assert decide_at(state, BASE - 2 * SECOND, policy).allowed
    early = decide_at(state, BASE - 2 * SECOND - 1, policy)
    assert (early.verdict, early.reason) == (Verdict.DENY, Reason.UNKNOWN_SESSION)


def test_heartbeats_every_30s_do_not_keep_a_session_alive() -> None:
    state = live_session(POLICY)
    for second in range(30, 30 * 60 + 1, 30):
        state = apply(state, Heartbeat("S1", BASE + second * SECOND), POLICY)
    assert state == live_session(POLICY)
    assert decide_at(state, BASE + 30 * MINUTE).reason is Reason.EXPIRED_IDLE


REAUTH_POLICY: Final = Policy(
    absolute_timeout=HOUR, idle_timeout=30 * MINUTE, decision_ttl=DAY, ip_binding="off",
    device_binding="off", actions=(
        ActionRule(("repo.delete",), reauth_within=10 * MINUTE),
        ActionRule(("payments.*",), min_auth_level=3),
    ),
)


def test_reauth_window_boundary() -> None:
    state = live_session(REAUTH_POLICY)
    before = decide_at(state, BASE + 10 * MINUTE - 1, REAUTH_POLICY, "repo.delete")
    assert (before.verdict, before.reason) == (Verdict.ALLOW, Reason.OK)
    assert before.valid_until == BASE + 10 * MINUTE
    at = decide_at(state, BASE + 10 * MINUTE, REAUTH_POLICY, "repo.delete")
    assert (at.verdict, at.reason) == (Verdict.STEP_UP, Reason.REAUTH_REQUIRED)
    assert decide_at(state, BASE + 10 * MINUTE, REAUTH_POLICY, "report.view").allowed


def test_reauth_freshness_is_measured_from_auth_time_not_arrival() -> None:
    state = apply(live_session(REAUTH_POLICY), Activity("S1", BASE + 25 * MINUTE), REAUTH_POLICY)
    stale = apply(state, Reauthenticated("S1", BASE + 40 * MINUTE, BASE + 20 * MINUTE, 2),
                  REAUTH_POLICY)
    fresh = apply(state, Reauthenticated("S1", BASE + 40 * MINUTE, BASE + 40 * MINUTE, 2),
                  REAUTH_POLICY)
    now = BASE + 41 * MINUTE
    assert decide_at(stale, now, REAUTH_POLICY, "repo.delete").verdict is Verdict.STEP_UP
    assert decide_at(fresh, now, REAUTH_POLICY, "repo.delete").allowed


def test_min_auth_level_steps_up_until_a_stronger_proof() -> None:
    state = live_session(REAUTH_POLICY)
    weak = decide_at(state, BASE + MINUTE, REAUTH_POLICY, "payments.transfer")
    assert (weak.verdict, weak.reason) == (Verdict.STEP_UP, Reason.REAUTH_REQUIRED)
    assert weak.valid_until == weak.decided_at
    strong = apply(state, Reauthenticated("S1", BASE + MINUTE, BASE + MINUTE, 3), REAUTH_POLICY)
    assert decide_at(strong, BASE + 2 * MINUTE, REAUTH_POLICY, "payments.transfer").allowed


def test_live_clock_tolerances_include_their_bound() -> None:
    policy = Policy(intent_max_age=30 * SECOND, skew_tolerance=2 * SECOND, ip_binding="off",
                    device_binding="off")
    state = live_session(policy)
    now = BASE + MINUTE

    def reason(occurred_at: Millis) -> Reason:
        return decide(state, intent_for(state, occurred_at), policy, now).reason

    assert reason(now - 30 * SECOND) is Reason.OK
    assert reason(now - 30 * SECOND - 1) is Reason.STALE_INTENT
    assert reason(now + 2 * SECOND) is Reason.OK
    assert reason(now + 2 * SECOND + 1) is Reason.CLOCK_SKEW


# -- explicit rule order ---------------------------------------------------------------

_ORDER_POLICY: Final = Policy(absolute_timeout=HOUR, idle_timeout=30 * MINUTE,
                              device_binding="exact", ip_binding="exact",
                              actions=(ActionRule(("*",), min_auth_level=3),))


def _state(**changes: object) -> SessionState:
    return replace(live_session(_ORDER_POLICY), **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "now", "device", "live_age", "expected"),
    [
        (_state(status=Status.REVOKED, end_reason="admin"), BASE + 2 * HOUR, "D1", None,
         Reason.REVOKED),
        (_state(status=Status.LOGGED_OUT), BASE + 2 * HOUR, "D2", None, Reason.REVOKED),
        (_state(status=Status.EXPIRED), BASE + 40 * MINUTE, "D2", None,
         Reason.EXPIRED_ABSOLUTE),
        (_state(), BASE + 2 * HOUR, "D2", None, Reason.EXPIRED_ABSOLUTE),
        (_state(), BASE + 40 * MINUTE, "D2", None, Reason.EXPIRED_IDLE),
        (_state(), BASE + 10 * MINUTE, "D2", None, Reason.CONTEXT_MISMATCH),
        (_state(), BASE + 10 * MINUTE, "D1", None, Reason.REAUTH_REQUIRED),
        (None, BASE + 10 * MINUTE, "D1", None, Reason.UNKNOWN_SESSION),
        (None, BASE + 10 * MINUTE, "D1", HOUR, Reason.STALE_INTENT),
        (_state(status=Status.REVOKED), BASE + 2 * HOUR, "D2", -HOUR, Reason.CLOCK_SKEW),
    ],
    ids=["revoked+absolute", "logged_out+absolute+device", "expired_event+idle",
         "absolute+idle+device", "idle+device", "device+level", "level", "unknown",
         "stale+unknown", "skew+revoked"],
)
def test_rule_order_when_several_rules_fail(
    state: SessionState | None, now: Millis, device: str, live_age: Millis | None,
    expected: Reason,
) -> None:
    occurred_at = now if live_age is None else now - live_age
    intent = Intent("I", "S1", "U1", "role.edit", "r", occurred_at, "203.0.113.7", device,
                    "ui", "app")
    decision = decide(state, intent, _ORDER_POLICY, now, live=live_age is not None)
    assert decision.reason is expected
    assert decision.verdict is (Verdict.STEP_UP if expected is Reason.REAUTH_REQUIRED
                                else Verdict.DENY)


# -- context binding -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "bound", "seen", "same"),
    [
        ("exact", "203.0.113.7", "203.0.113.7", True),
        ("exact", "203.0.113.7", "203.0.113.8", False),
        ("prefix24", "203.0.113.7", "203.0.113.200", True),
        ("prefix24", "203.0.113.7", "203.0.114.7", False),
        ("prefix24", "2001:db8::1", "2001:db8::ffff:1", True),
        ("prefix24", "2001:db8::1", "2001:db8:0:1::1", False),
        ("prefix24", "203.0.113.7", "garbage", False),
        ("prefix24", "203.0.113.7", "::ffff:203.0.113.99", True),
        ("prefix24", "::ffff:203.0.113.7", "203.0.114.7", False),
        ("exact", "203.0.113.7", "::ffff:203.0.113.7", False),
        ("off", "203.0.113.7", "198.51.100.1", True),
    ],
)
def test_ip_binding(mode: str, bound: str, seen: str, same: bool) -> None:
    policy = Policy(ip_binding=mode, device_binding="off")  # type: ignore[arg-type]
    state = live_session(policy, ip=bound)
    decision = decide(state, replace(intent_for(state, BASE), ip=seen), policy, BASE, live=False)
    assert decision.reason is (Reason.OK if same else Reason.CONTEXT_MISMATCH)


def test_device_binding_follows_reauth_never_activity() -> None:
    policy = Policy(ip_binding="off", device_binding="exact")
    state = apply(live_session(policy), Activity("S1", BASE + MINUTE, device_id="D2"), policy)
    d2 = replace(intent_for(state, BASE + 2 * MINUTE), device_id="D2")
    assert decide(state, d2, policy, BASE + 2 * MINUTE, live=False).reason is (
        Reason.CONTEXT_MISMATCH)
    state = apply(state, Reauthenticated("S1", BASE + 3 * MINUTE, BASE + 3 * MINUTE, 2,
                                         device_id="D2"), policy)
    assert decide(state, d2, policy, BASE + 4 * MINUTE, live=False).allowed
    d1 = replace(d2, device_id="D1")
    assert decide(state, d1, policy, BASE + 4 * MINUTE, live=False).reason is (
        Reason.CONTEXT_MISMATCH)
    off = Policy(ip_binding="off", device_binding="off")
    assert decide(state, d1, off, BASE + 4 * MINUTE, live=False).allowed


def test_another_users_intent_is_a_context_mismatch_even_with_bindings_off() -> None:
    policy = Policy(ip_binding="off", device_binding="off")
    state = live_session(policy)
    intent = replace(intent_for(state, BASE), user_id="U2")
    assert decide(state, intent, policy, BASE, live=False).reason is Reason.CONTEXT_MISMATCH


# -- an allow must stay valid for a while ----------------------------------------------


def test_a_zero_decision_ttl_never_yields_an_allow_valid_for_no_time() -> None:
    source = b'[binding]\nip = "off"\ndevice = "off"\n[decision]\nttl = "0s"\n'
    try:
        policy = parse_policy(source)
    except PolicyError:
        return  # rejecting the policy is one acceptable fix
    state = live_session(policy)
    decision = decide(state, intent_for(state, BASE), policy, BASE, live=False)
    assert not decision.allowed or decision.valid_until > decision.decided_at


# -- timestamps --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ok"),
    [(EARLIEST, True), (EARLIEST - 1, False), (LATEST - 1, True), (LATEST, False),
     (BASE // 1000, False), (BASE * 1000, False), (0, False), (-BASE, False)],
    ids=["2000", "just-before-2000", "just-before-2100", "2100", "seconds", "micros", "epoch",
         "negative"],
)
def test_check_instant_range(value: Millis, ok: bool) -> None:
    if ok:
        check_instant("at", value)
    else:
        with pytest.raises(RejectedEvent) as info:
            check_instant("at", value)
        assert info.value.kind == "absurd_timestamp"


def test_live_mode_rejects_more_than_a_day_ahead() -> None:
    check_instant("at", BASE + DAY, now=BASE)
    with pytest.raises(RejectedEvent) as info:
        check_instant("at", BASE + DAY + 1, now=BASE)
    assert info.value.kind == "absurd_timestamp"
    check_instant("at", BASE + DAY + 1)  # replay mode has no clock to compare with
    intent = Intent("I", "S1", "U1", "a.b", "r", BASE + DAY + 1, "ip", "D1", "ui", "app")
    validate_intent(intent)
    with pytest.raises(RejectedEvent) as info:
        validate_intent(intent, now=BASE)
    assert info.value.kind == "absurd_timestamp"


absurd = st.integers(-(2**63), EARLIEST - 1) | st.integers(LATEST, 2**63 - 1)


@CHEAP
@given(lifecycle_events, absurd, st.sampled_from(("at", "auth_time", "expires_at")))
def test_every_event_with_an_absurd_timestamp_is_rejected(
    event: LifecycleEvent, value: Millis, name: str
) -> None:
    validate_event(event)  # the strategy builds valid events
    assume(hasattr(event, name))
    with pytest.raises(RejectedEvent) as info:
        validate_event(replace(event, **{name: value}))  # type: ignore[arg-type]
    assert info.value.kind == "absurd_timestamp"


@CHEAP
@given(lifecycle_events, st.integers(1, 10 * DAY))
def test_live_validation_rejects_events_from_the_far_future(
    event: LifecycleEvent, ahead: Millis
) -> None:
    now = event.at - ahead
    if ahead > DAY:
        with pytest.raises(RejectedEvent) as info:
            validate_event(event, now)
        assert info.value.kind == "absurd_timestamp"
    else:
        validate_event(event, now)


@CHEAP
@given(intents, absurd)
def test_an_intent_with_an_absurd_time_is_rejected(intent: Intent, value: Millis) -> None:
    validate_intent(intent)
    with pytest.raises(RejectedEvent) as info:
        validate_intent(replace(intent, occurred_at=value))
    assert info.value.kind == "absurd_timestamp"


@pytest.mark.parametrize(
    ("changes", "kind"),
    [({"intent_id": ""}, "missing_field"), ({"session_id": ""}, "missing_field"),
     ({"action": ""}, "missing_field"), ({"channel": "sms"}, "malformed")],
)
def test_an_unusable_intent_is_rejected(changes: dict[str, str], kind: str) -> None:
    intent = Intent("I", "S1", "U1", "a.b", "r", BASE, "203.0.113.7", "D1", "ui", "app")
    with pytest.raises(RejectedEvent) as info:
        validate_intent(replace(intent, **changes))  # type: ignore[arg-type]
    assert info.value.kind == kind


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        (SessionCreated("", BASE, "U1", BASE, 2, "ip", "D1"), "missing_field"),
        (SessionCreated("S1", BASE, "", BASE, 2, "ip", "D1"), "missing_field"),
        (SessionCreated("S1", BASE, "U1", BASE, 0, "ip", "D1"), "malformed"),
        (Reauthenticated("S1", BASE, BASE, 4), "malformed"),
        (Heartbeat("", BASE), "missing_field"),
        (Revoked("S1", BASE, ""), None),
        (Reauthenticated("S1", BASE, BASE + 1, 2), "absurd_timestamp"),  # proof from the future
        (SessionCreated("S1", BASE, "U1", BASE + 1, 2, "ip", "D1"), "absurd_timestamp"),
        (SessionCreated("S1", BASE, "U1", BASE, 3, "", "", expires_at=LATEST + DAY),
         "absurd_timestamp"),
    ],
)
def test_an_unusable_event_is_rejected(event: LifecycleEvent, kind: str | None) -> None:
    if kind is None:
        validate_event(event)
        return
    with pytest.raises(RejectedEvent) as info:
        validate_event(event)
    assert info.value.kind == kind
