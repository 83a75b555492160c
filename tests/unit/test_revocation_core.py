"""Property tests of what kills sessions across partitions, of held early events,
rotation hand-offs and duplicate intents: all pure, all without Kafka."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final

from hypothesis import example, given, settings
from hypothesis import strategies as st

from doublelock.events import (
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
    Rotated,
    SessionCreated,
    UserSessionsRevoked,
)
from doublelock.policy import Policy
from doublelock.revocations import Revocations
from doublelock.session import MAX_EARLY, Early, SessionState, Status, apply, step, successor
from doublelock.verdict import Reason, Verdict
from workers.decide import Replay, replay
from workers.scenario import to_json

BASE: Final[Millis] = int(datetime(2026, 5, 12, 9, tzinfo=UTC).timestamp()) * SECOND
POLICY: Final = Policy(absolute_timeout=60 * MINUTE, idle_timeout=60 * MINUTE)
SIDS: Final = ("A", "B", "C", "D", "E")
USERS: Final = ("U1", "U2")
PROPERTY = settings(max_examples=300, deadline=None)

minutes = st.integers(0, 120).map(lambda m: BASE + m * MINUTE)
sids = st.sampled_from(SIDS)
users = st.sampled_from(USERS)
reasons = st.sampled_from(("password_reset", "account_disabled", "mfa_enrolled", "admin"))

lineage_events = st.one_of(
    st.builds(SessionCreated, session_id=sids, at=minutes, user_id=users, auth_time=st.just(BASE),
              auth_level=st.just(2), ip=st.just("192.0.2.1"), device_id=st.just("D1"),
              parent_session_id=st.none() | sids),
    st.builds(Rotated, session_id=sids, at=minutes, new_session_id=sids),
    st.builds(Revoked, session_id=sids, at=minutes, reason=st.just("admin")),
    st.builds(UserSessionsRevoked, user_id=users, at=minutes, reason=reasons,
              except_session_id=st.none() | sids),
)


def state(sid: str, user: str = "U1", born: Millis = BASE,
          former: tuple[str, ...] = ()) -> SessionState:
    return SessionState(sid, user, born, born, 2, "192.0.2.1", "D1", born, created_at=born,
                        former_ids=former)


def fed(events: list[Any]) -> Revocations:
    revocations = Revocations(POLICY)
    for event in events:
        if isinstance(event, UserSessionsRevoked):
            revocations.apply_user(event)
        else:
            revocations.apply_lineage(event)
    return revocations


@PROPERTY
@given(st.lists(lineage_events, max_size=12), st.lists(lineage_events, max_size=6),
       sids, users, minutes)
@example(  # a rotation naming a session of its own as the new id: no exception for it
    first=[SessionCreated("A", BASE, "U1", BASE, 2, "192.0.2.1", "D1"),
           UserSessionsRevoked("U1", BASE + MINUTE, "password_reset", except_session_id="D")],
    more=[Rotated("D", BASE, "A")], sid="A", user="U1", born=BASE)
def test_more_revocations_never_revive_a_session(
    first: list[Any], more: list[Any], sid: str, user: str, born: Millis
) -> None:
    session = state(sid, user, born)
    if fed(first).revoked_by(session) is not None:
        assert fed(first + more).revoked_by(session) is not None


@PROPERTY
@given(st.lists(lineage_events, max_size=14), sids, users, minutes,
       st.integers(0, 200).map(lambda m: BASE + m * MINUTE))
def test_pruning_forgets_only_what_touches_dead_sessions(
    events: list[Any], sid: str, user: str, born: Millis, now: Millis
) -> None:
    before = fed(events)
    link = before._links.get(sid)
    if link is not None:  # a session logs in before it is linked (created, rotated to)
        born = min(born, link.at)
    session = state(sid, user, born)
    alive_then = now < session.absolute_end(POLICY)
    verdict = before.revoked_by(session)
    before.prune(now)
    if alive_then:
        assert before.revoked_by(session) == verdict


@given(st.lists(st.tuples(sids, sids), max_size=10))
def test_lineage_with_cycles_ends(pairs: list[tuple[str, str]]) -> None:
    revocations = fed([SessionCreated(child, BASE, "U1", BASE, 2, "ip", "D1",
                                      parent_session_id=parent)
                       for child, parent in pairs if child != parent])
    for sid in SIDS:
        ancestors = [a for a, _ in revocations.lineage(sid)]
        assert len(ancestors) == len(set(ancestors)) <= len(SIDS) - 1


def test_a_user_revocation_spares_later_sessions_and_the_one_that_made_it() -> None:
    reset = UserSessionsRevoked("U1", BASE + 10 * MINUTE, "password_reset",
                                except_session_id="A")
    revocations = fed([reset, Rotated("A", BASE + 10 * MINUTE, "A2"),
                       SessionCreated("K", BASE, "U1", BASE, 2, "ip", "D1",
                                      parent_session_id="A")])
    assert revocations.revoked_by(state("B")) == "all sessions of the user revoked " \
                                                  "(password_reset)"
    assert revocations.revoked_by(state("A")) is None
    assert revocations.revoked_by(state("A2", former=("A",))) is None  # the same login
    # A session of its own that a rotation names as the new id is not that login.
    assert revocations.revoked_by(state("A2")) is not None
    assert revocations.revoked_by(state("K")) is not None  # minted from it: not the same login
    assert revocations.revoked_by(state("B", born=reset.at)) is None  # created at the reset
    assert revocations.revoked_by(state("B", user="U2")) is None


def test_revoking_an_ancestor_reaches_every_descendant() -> None:
    revocations = fed([
        SessionCreated("B", BASE, "U1", BASE, 2, "ip", "D1", parent_session_id="A"),
        Rotated("B", BASE, "C"),
        SessionCreated("D", BASE, "U1", BASE, 2, "ip", "D1", parent_session_id="C"),
    ])
    assert revocations.revoked_by(state("D")) is None
    revocations.apply_lineage(Revoked("A", BASE + MINUTE, "admin"))
    for sid in "BCD":
        assert revocations.revoked_by(state(sid)) == "ancestor session A revoked (admin)"
    assert revocations.revoked_by(state("E")) is None


def test_a_first_parent_stands() -> None:
    revocations = fed([
        SessionCreated("B", BASE, "U1", BASE, 2, "ip", "D1", parent_session_id="A"),
        SessionCreated("B", BASE, "U1", BASE, 2, "ip", "D1", parent_session_id="Z"),
    ])
    assert [a for a, _ in revocations.lineage("B")] == ["A"]


# -- held early events ---------------------------------------------------------------

def created(sid: str = "A", at: Millis = BASE) -> SessionCreated:
    return SessionCreated(sid, at, "U1", at, 2, "192.0.2.1", "D1")


later_events = st.one_of(
    st.builds(Activity, session_id=st.just("A"), at=minutes),
    st.builds(Heartbeat, session_id=st.just("A"), at=minutes),
    st.builds(Reauthenticated, session_id=st.just("A"), at=minutes, auth_time=minutes,
              auth_level=st.just(3)),
    st.builds(LoggedOut, session_id=st.just("A"), at=minutes),
    st.builds(Revoked, session_id=st.just("A"), at=minutes, reason=st.just("admin")),
    st.builds(Expired, session_id=st.just("A"), at=minutes),
    st.builds(Rotated, session_id=st.just("A"), at=minutes, new_session_id=st.just("B")),
)


@PROPERTY
@given(st.lists(later_events, max_size=MAX_EARLY))
def test_events_before_the_creation_apply_once_it_comes(early: list[LifecycleEvent]) -> None:
    slot: Any = None
    for event in early:
        slot, held = step(slot, event, POLICY)
        assert held is not None and held.kind == "unknown_session"
        assert isinstance(slot, Early)
    final, problem = step(slot, created(), POLICY)
    assert problem is None
    expected = apply(None, created(), POLICY)
    for event in early:
        expected = apply(expected, event, POLICY)
    assert final == expected


@PROPERTY
@given(st.lists(later_events, min_size=MAX_EARLY + 1, max_size=3 * MAX_EARLY))
def test_holding_is_bounded_and_never_drops_the_end(early: list[LifecycleEvent]) -> None:
    slot: Any = None
    for event in early:
        slot, _ = step(slot, event, POLICY)
    assert isinstance(slot, Early) and len(slot.events) <= MAX_EARLY + 1
    final, _ = step(slot, created(), POLICY)
    assert isinstance(final, SessionState)
    ends = (LoggedOut, Revoked, Expired, Rotated)
    if any(isinstance(e, ends) for e in early):
        assert not final.alive


@PROPERTY
@given(st.lists(later_events, max_size=6))
def test_a_rotation_applied_again_hands_on_the_same_login(history: list[Any]) -> None:
    before = apply(None, created(), POLICY)
    for event in history:
        if not isinstance(event, Rotated):
            before = apply(before, event, POLICY)
    rotation = Rotated("A", BASE + 200 * MINUTE, "B")
    after = apply(before, rotation, POLICY)
    # A record delivered again finds the session rotated already: same heir.
    assert successor(after, rotation) == successor(before, rotation)
    heir, _ = step(None, successor(before, rotation), POLICY)
    assert isinstance(heir, SessionState)
    assert (heir.login_at, heir.auth_time, heir.device_id, heir.alive) == (
        before.login_at, before.auth_time, before.device_id, before.alive)
    assert heir.former_ids == ("A", *before.former_ids)
    # A second rotation of the same id hands on a dead session.
    second = successor(after, Rotated("A", rotation.at, "C"))
    assert second.status != Status.ACTIVE.value
    assert second.status == (Status.ROTATED if before.alive else before.status).value


def test_the_excepted_session_lives_on_through_every_rotation() -> None:
    reset = UserSessionsRevoked("U1", BASE + 10 * MINUTE, "password_reset",
                                except_session_id="A")
    slot, _ = step(None, created(), POLICY)
    for old, new in (("A", "B"), ("B", "C")):
        assert isinstance(slot, SessionState)
        rotation = Rotated(old, BASE + 20 * MINUTE, new)
        slot, _ = step(None, successor(slot, rotation), POLICY)
    assert isinstance(slot, SessionState) and slot.former_ids == ("B", "A")
    revocations = fed([reset, Rotated("A", BASE + 20 * MINUTE, "B"),
                       Rotated("B", BASE + 20 * MINUTE, "C")])
    assert revocations.revoked_by(slot) is None
    assert revocations.revoked_by(replace(slot, former_ids=("B",))) is not None


# -- duplicates ----------------------------------------------------------------------

def intent(iid: str, at: Millis, sid: str = "A") -> Intent:
    return Intent(iid, sid, "U1", "payments.transfer", "r", at, "192.0.2.1", "D1", "ui", "app")


@PROPERTY
@given(st.lists(st.tuples(st.sampled_from(("I1", "I2", "I3")), st.sampled_from("AB"),
                          st.integers(0, 40)), min_size=1, max_size=20))
def test_an_intent_id_is_allowed_at_most_once_per_window(
    attempts: list[tuple[str, str, int]]
) -> None:
    engine = Replay(POLICY)
    for sid in "AB":
        engine.apply(created(sid))
    first: dict[tuple[str, str], Any] = {}
    for iid, sid, minute in sorted(attempts, key=lambda a: a[2]):
        decision = engine.decide(intent(iid, BASE + minute * MINUTE, sid),
                                 BASE + minute * MINUTE, live=False)
        key = (sid, iid)
        if key in first:
            assert decision.reason is Reason.DUPLICATE_INTENT
            assert decision.verdict is Verdict.DENY
        else:
            first[key] = decision
            assert decision.reason is not Reason.DUPLICATE_INTENT


def test_an_intent_id_after_the_dedupe_window_is_decided_afresh() -> None:
    policy = replace(POLICY, dedupe_window=10 * MINUTE)
    engine = Replay(policy)
    engine.apply(created())
    assert engine.decide(intent("I1", BASE), BASE, live=False).allowed
    assert engine.decide(intent("I1", BASE + 9 * MINUTE), BASE + 9 * MINUTE,
                         live=False).reason is Reason.DUPLICATE_INTENT
    assert engine.decide(intent("I1", BASE + 10 * MINUTE), BASE + 10 * MINUTE,
                         live=False).allowed


def test_decide_replays_the_new_line_types() -> None:
    lines = [created("P"), Rotated("P", BASE + MINUTE, "P2"),
             UserSessionsRevoked("U1", BASE + 2 * MINUTE, "admin", except_session_id="P"),
             intent("I1", BASE + 3 * MINUTE, "P2"), intent("I2", BASE + 3 * MINUTE, "P")]
    source = io.StringIO("".join(json.dumps(to_json(line)) + "\n" for line in lines))
    results = [r for _, r in replay(source, POLICY)]
    assert [(r.intent_id, r.verdict.value, r.reason.value) for r in results] == [  # type: ignore[union-attr]
        ("I1", "allow", "ok"), ("I2", "deny", "revoked")]


def test_revoking_a_parent_under_its_new_id_reaches_its_children() -> None:
    # K0 minted from S1; S1 rotated to S2 (the same login); S2 revoked.
    revocations = fed([
        SessionCreated("K0", BASE, "U1", BASE, 2, "ip", "D1", parent_session_id="S1"),
        Rotated("S1", BASE + MINUTE, "S2"),
    ])
    assert revocations.revoked_by(state("K0")) is None
    revocations.apply_lineage(Revoked("S2", BASE + 2 * MINUTE, "admin"))
    assert revocations.revoked_by(state("K0")) == "ancestor session S1 revoked as S2 (admin)"


def test_a_session_minted_from_an_id_already_rotated_away_is_born_dead() -> None:
    revocations = fed([
        SessionCreated("K0", BASE, "U1", BASE, 2, "ip", "D1", parent_session_id="S1"),
        Rotated("S1", BASE + MINUTE, "S2"),
        SessionCreated("K1", BASE + 2 * MINUTE, "U1", BASE, 2, "ip", "D1",
                       parent_session_id="S1"),
    ])
    assert revocations.revoked_by(state("K0")) is None  # minted before: lives with S2
    assert revocations.revoked_by(state("K1")) == "minted from S1 after it was rotated to S2"


def test_pruning_keeps_a_rotation_while_sessions_minted_from_the_old_id_live() -> None:
    rotated = BASE + MINUTE
    revocations = fed([Rotated("B", rotated, "A"),
                       SessionCreated("K", rotated + 30 * MINUTE, "U1", rotated, 2, "ip", "D1",
                                      parent_session_id="B")])
    verdict = "minted from B after it was rotated to A"
    assert revocations.revoked_by(state("K", born=rotated + 30 * MINUTE)) == verdict
    revocations.prune(rotated + POLICY.absolute_timeout + MINUTE)  # the rotation is old now
    assert revocations.revoked_by(state("K", born=rotated + 30 * MINUTE)) == verdict
