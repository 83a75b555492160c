"""A forged allow written straight to the decisions topic unlocks nothing: the
worker signs every decision, and the reader drops whatever it cannot verify."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from doublelock.events import Intent, LoggedOut, Reauthenticated, Rotated, SessionCreated
from doublelock.signing import parse_key_ring, sign, verify
from doublelock.verdict import Decision, Reason, Verdict
from schemas.codec import Codec
from tests.cases import policy
from tests.live import ask
from workers.client import DecisionReader, Publisher

pytestmark = pytest.mark.integration

KEYS = "k-2026-12:" + "s" * 40


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_a_forged_allow_is_refused_and_the_signed_deny_gets_through(start_worker: Any) -> None:
    worker = start_worker(None, DOUBLELOCK_SIGNING_KEYS=KEYS)
    sid, run = f"sig-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:6]
    publisher, reader = Publisher(worker.settings), DecisionReader(worker.settings)
    assert reader.key_ring is not None
    at = now_ms()
    publisher.lifecycle(SessionCreated(sid, at, "U1", at, 2, "192.0.2.4", "D1"))
    publisher.lifecycle(LoggedOut(sid, at + 1)).get(timeout=10)
    intent = Intent(f"X-{run}", sid, "U1", "account.delete", "a/1", now_ms(), "192.0.2.4",
                    "D1", "api", "sig")
    codec = Codec()
    for forged in (  # unsigned, and signed with a key the ring does not hold
        Decision(intent.intent_id, sid, "U1", intent.action, Verdict.ALLOW, Reason.OK, now_ms(),
                 now_ms() + 10_000, "forged"),
        sign(Decision(intent.intent_id, sid, "U1", intent.action, Verdict.ALLOW, Reason.OK,
                      now_ms(), now_ms() + 10_000, "forged"),
             parse_key_ring("k-2026-12:" + "x" * 40)),
    ):
        publisher.raw(worker.settings.topics.decisions, sid.encode(), codec.encode(forged))
    publisher.flush()
    got = ask(publisher, reader, intent)
    publisher.close()
    reader.close()
    assert (got.verdict, got.reason) == (Verdict.DENY, Reason.REVOKED)
    assert got.key_id == "k-2026-12" and verify(got, parse_key_ring(KEYS))
    assert reader.refused == 2


SIGNED_EVENTS = policy(actions='[[actions]]\nmatch = ["repo.delete"]\nreauth_within = "5m"\n') + \
    "[events]\nrequire_signature = true\n"
EVENT_KEYS = "idp-1:" + "e" * 40


def test_with_signed_events_required_an_unsigned_reauthentication_changes_nothing(
    start_worker: Any,
) -> None:
    worker = start_worker(SIGNED_EVENTS, DOUBLELOCK_EVENT_KEYS=EVENT_KEYS)
    run = uuid.uuid4().hex[:6]
    sid, heir = f"se-{run}", f"se-{run}-2"
    publisher, reader = Publisher(worker.settings), DecisionReader(worker.settings)
    assert publisher.event_ring is not None  # the identity provider's side signs
    login = now_ms() - 10 * 60_000  # ten minutes ago: too old for repo.delete
    publisher.lifecycle(SessionCreated(sid, login, "U1", login, 2, "192.0.2.4", "D1"))
    forged = Reauthenticated(sid, now_ms(), now_ms(), 2)
    publisher.raw(worker.settings.topics.sessions, sid.encode(), Codec().encode(forged))
    publisher.flush()

    def attempt(session: str, n: int) -> tuple[str, str]:
        intent = Intent(f"{session}-{n}", session, "U1", "repo.delete", "r", now_ms(),
                        "192.0.2.4", "D1", "ui", "sig")
        got = ask(publisher, reader, intent)
        return got.verdict.value, got.reason.value

    assert attempt(sid, 1) == ("step_up", "reauth_required")  # the forgery did nothing
    publisher.lifecycle(Reauthenticated(sid, now_ms(), now_ms(), 2)).get(timeout=10)
    assert attempt(sid, 2) == ("allow", "ok")
    # The worker signs what it writes itself: a rotation's hand-off is accepted.
    publisher.lifecycle(Rotated(sid, now_ms(), heir)).get(timeout=10)
    assert attempt(heir, 1) == ("allow", "ok")
    publisher.close()
    reader.close()
    log = worker.stop()
    assert "bad_signature" in log and log.count("rejected ") == 1, log[-3000:]
