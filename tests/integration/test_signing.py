"""A forged allow written straight to the decisions topic unlocks nothing: the
worker signs every decision, and the reader drops whatever it cannot verify."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from doublelock.events import Intent, LoggedOut, SessionCreated
from doublelock.signing import parse_key_ring, sign, verify
from doublelock.verdict import Decision, Reason, Verdict
from schemas.codec import Codec
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
    publisher.intent(intent).get(timeout=10)
    got = reader.wait_for([intent.intent_id], 20)[intent.intent_id]
    publisher.close()
    reader.close()
    assert (got.verdict, got.reason) == (Verdict.DENY, Reason.REVOKED)
    assert got.key_id == "k-2026-12" and verify(got, parse_key_ring(KEYS))
    assert reader.refused == 2
