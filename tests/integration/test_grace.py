"""Grace: a revoke that reaches the broker up to ``grace`` after the intent still wins;
one later than that does not (the decision is taken by then)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from doublelock.events import Intent, Revoked, SessionCreated
from workers.client import DecisionReader, Publisher

pytestmark = pytest.mark.integration


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_a_revoke_within_grace_after_the_intent_still_wins(start_worker: Any) -> None:
    worker = start_worker(None, DOUBLELOCK_GRACE_MS="1500")
    run = uuid.uuid4().hex[:6]
    early, late = f"grace-early-{run}", f"grace-late-{run}"
    publisher, reader = Publisher(worker.settings), DecisionReader(worker.settings)
    at = now_ms()
    for sid in (early, late):
        publisher.lifecycle(SessionCreated(sid, at, "U1", at, 2, "192.0.2.8", "D1"))
    publisher.flush()
    intents = {sid: Intent(f"i-{sid}", sid, "U1", "doc.delete", "r", now_ms(), "192.0.2.8",
                           "D1", "api", "grace") for sid in (early, late)}
    sent = time.monotonic()
    for intent in intents.values():
        publisher.intent(intent).get(timeout=10)
    time.sleep(0.3)  # well inside the grace
    publisher.lifecycle(Revoked(early, now_ms(), "admin")).get(timeout=10)
    got = reader.wait_for([i.intent_id for i in intents.values()], 20)
    waited = time.monotonic() - sent
    publisher.lifecycle(Revoked(late, now_ms(), "admin")).get(timeout=10)  # too late
    publisher.close()
    reader.close()
    assert got[intents[early].intent_id].reason.value == "revoked"
    assert got[intents[late].intent_id].reason.value == "ok"
    assert waited >= 1.5  # every decision waits out the grace
