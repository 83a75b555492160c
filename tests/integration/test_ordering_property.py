"""The live worker decides as a reference model fed the same events in broker append
order, whatever order Faust hands the topics over in.

Random programs of lifecycle events, user revocations, rotations and intents (some
repeating an earlier intent id) are produced one record at a time, each acknowledged
before the next, so the append order across ``sessions``, ``users`` and ``intents``
is the program's order. A backlog on ``sessions`` keeps the worker's lifecycle
consumption behind its intents. After each intent the test waits for its decision
and compares it with the core's replay (``workers.decide.Replay``) of the events
before it, at the worker's ``decided_at``.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from doublelock.errors import RejectedEvent
from doublelock.events import (
    Activity,
    Heartbeat,
    Intent,
    LoggedOut,
    Reauthenticated,
    Revoked,
    Rotated,
    SessionCreated,
    UserSessionsRevoked,
)
from doublelock.policy import parse_policy
from doublelock.verdict import Decision
from tests.cases import policy
from workers.client import DecisionReader, Publisher
from workers.decide import Replay

pytestmark = pytest.mark.integration

POLICY = policy(idle="3s", actions='[[actions]]\nmatch = ["payments.*"]\nreauth_within = "4s"\n')
BACKLOG = 2000  # heartbeats ahead of each program, spread over four partitions

slot = st.integers(0, 7)
users = st.sampled_from(("U1", "U2"))
devices = st.sampled_from(("D1", "D2"))
steps = st.lists(st.one_of(
    st.tuples(st.just("create"), slot, users, st.none() | slot),
    st.tuples(st.just("activity"), slot),
    st.tuples(st.just("heartbeat"), slot),
    st.tuples(st.just("reauth"), slot, devices),
    st.tuples(st.just("logout"), slot),
    st.tuples(st.just("revoke"), slot),
    st.tuples(st.just("rotate"), slot),
    st.tuples(st.just("user_revoke"), users, st.none() | slot),
    st.tuples(st.just("intent"), slot, st.sampled_from(("payments.transfer", "doc.delete")),
              devices, st.booleans()),
    st.tuples(st.just("intent"), slot, st.just("doc.delete"), st.just("D1"), st.just(False)),
    st.tuples(st.just("pause"), st.integers(100, 2500)),
), min_size=3, max_size=22)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Decisions:
    """Every decision read so far, by intent id, in the order they came."""

    def __init__(self, reader: DecisionReader) -> None:
        self.reader = reader
        self.seen: dict[str, list[Decision]] = {}

    def nth(self, intent_id: str, n: int, timeout_s: float = 20.0) -> Decision | None:
        deadline = time.monotonic() + timeout_s
        while len(self.seen.get(intent_id, ())) < n and time.monotonic() < deadline:
            for decision in self.reader.poll():
                self.seen.setdefault(decision.intent_id, []).append(decision)
        got = self.seen.get(intent_id, [])
        return got[n - 1] if len(got) >= n else None


def _run(program: list[tuple[Any, ...]], publisher: Publisher, decisions: Decisions,
         run: str) -> list[str]:
    """Play the program; the mismatches between the worker and the reference."""
    policy = parse_policy(POLICY.encode())
    reference = Replay(policy)
    pool = [f"{run}-S{i}" for i in range(4)]
    owner: dict[str, str] = {}
    intents: list[str] = []
    counts: dict[str, int] = {}
    mismatches: list[str] = []

    def sid(index: int) -> str:
        return pool[index % len(pool)]

    def lifecycle(event: Any) -> None:
        publisher.lifecycle(event).get(timeout=10)
        with contextlib.suppress(RejectedEvent):  # held or refused, as the worker does
            reference.apply(event)

    prelude = [("create", i, "U1", None) for i in range(3)]
    for step in prelude + program:
        kind, at = step[0], now_ms()
        if kind == "create":
            parent = None if step[3] is None else sid(step[3])
            session = sid(step[1])
            owner.setdefault(session, step[2])
            lifecycle(SessionCreated(session, at, step[2], at, 2, "192.0.2.1", "D1",
                                     parent_session_id=parent if parent != session else None))
        elif kind == "activity":
            lifecycle(Activity(sid(step[1]), at))
        elif kind == "heartbeat":
            lifecycle(Heartbeat(sid(step[1]), at))
        elif kind == "reauth":
            lifecycle(Reauthenticated(sid(step[1]), at, at, 2, device_id=step[2]))
        elif kind == "logout":
            lifecycle(LoggedOut(sid(step[1]), at))
        elif kind == "revoke":
            lifecycle(Revoked(sid(step[1]), at, "admin"))
        elif kind == "rotate":
            old = sid(step[1])
            new = f"{run}-S{len(pool)}"
            pool.append(new)
            owner[new] = owner.get(old, "U1")
            lifecycle(Rotated(old, at, new))
        elif kind == "user_revoke":
            spared = None if step[2] is None else sid(step[2])
            event = UserSessionsRevoked(step[1], at, "password_reset", spared)
            publisher.user_event(event).get(timeout=10)
            reference.revocations.apply_user(event)
        elif kind == "intent":
            session = sid(step[1])
            reuse = step[4] and intents
            intent_id = intents[-1] if reuse else f"{run}-I{len(intents)}"
            if not reuse:
                intents.append(intent_id)
            intent = Intent(intent_id, session, owner.get(session, "U1"), step[2], "r", at,
                            "192.0.2.1", step[3], "ui", "prop")
            publisher.intent(intent).get(timeout=10)
            counts[intent_id] = counts.get(intent_id, 0) + 1
            got = decisions.nth(intent_id, counts[intent_id])
            if got is None:
                mismatches.append(f"{step}: no decision")
                continue
            want = reference.decide(intent, got.decided_at, live=True)
            if (got.verdict, got.reason) != (want.verdict, want.reason):
                mismatches.append(f"{step} on {session}: worker {got.verdict.value}/"
                                  f"{got.reason.value} ({got.detail}), reference "
                                  f"{want.verdict.value}/{want.reason.value} ({want.detail})")
        elif kind == "pause":
            time.sleep(step[1] / 1000)
    return mismatches


def test_worker_decides_as_the_reference_in_append_order(start_worker: Any) -> None:
    worker = start_worker(POLICY, DOUBLELOCK_BARRIER_TIMEOUT_MS="5000")
    publisher, reader = Publisher(worker.settings), DecisionReader(worker.settings)
    decisions = Decisions(reader)
    noise = [f"noise-{uuid.uuid4().hex[:6]}-{i}" for i in range(16)]
    at = now_ms()
    for session in noise:
        publisher.lifecycle(SessionCreated(session, at, "N", at, 2, "192.0.2.9", "D9"))
    programs = 0

    @settings(max_examples=12, deadline=None, phases=[Phase.generate],
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow])
    @given(steps)
    def check(program: list[tuple[Any, ...]]) -> None:
        nonlocal programs
        programs += 1
        for i in range(BACKLOG):  # the sessions agent falls behind the intents
            publisher.lifecycle(Heartbeat(noise[i % len(noise)], now_ms()))
        mismatches = _run(program, publisher, decisions, uuid.uuid4().hex[:6])
        assert not mismatches, "\n".join(mismatches)

    try:
        check()
    finally:
        publisher.close()
        reader.close()
    log = worker.stop()
    assert programs == 12
    assert "Traceback" not in log, log[-3000:]
