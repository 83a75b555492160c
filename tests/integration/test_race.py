"""Revocation wins the race: 10,000 times, a revoke acknowledged by the broker just
before an intent, with the worker's sessions consumption lagging behind a backlog.
Not one may be allowed. With the default barrier budget the backlog makes most of
them ``state_unavailable``; with a long one they wait and meet the revoke. And the
same for user-wide revocations, which travel on another topic altogether."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import Any

import pytest

from doublelock.events import Heartbeat, Intent, Revoked, SessionCreated, UserSessionsRevoked
from workers.client import DecisionReader, Publisher

pytestmark = pytest.mark.integration

RACES = 10_000
BACKLOG = 30_000  # heartbeats queued ahead of the revokes: the sessions agent lags
BATCH = 200


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.mark.parametrize(("kind", "budget", "backlog"), [
    ("session", "250ms", BACKLOG), ("session", "10s", BACKLOG // 10),
    ("user", "250ms", BACKLOG), ("user", "10s", BACKLOG // 10)])
def test_revocation_wins_every_race(start_worker: Any, capsys: pytest.CaptureFixture[str],
                                    kind: str, budget: str, backlog: int) -> None:
    worker = start_worker(None, DOUBLELOCK_FLUSH_ROWS="5000",
                          DOUBLELOCK_BARRIER_TIMEOUT_MS=budget)
    settings = worker.settings
    run = uuid.uuid4().hex[:6]
    sessions = [f"race-{run}-{i}" for i in range(RACES)]
    publisher, reader = Publisher(settings), DecisionReader(settings)
    at = now_ms()
    for sid in sessions:  # one user per session: a user revocation kills just that one
        publisher.lifecycle(SessionCreated(sid, at, f"U-{sid}", at, 2, "192.0.2.5", "D1"))
    for i in range(backlog):
        publisher.lifecycle(Heartbeat(sessions[i % RACES], at + 1))
    publisher.flush()

    intent_ids = []
    started = time.monotonic()
    for first in range(0, RACES, BATCH):
        batch = sessions[first:first + BATCH]
        if kind == "session":
            acks = [publisher.lifecycle(Revoked(sid, now_ms(), "admin")) for sid in batch]
        else:
            acks = [publisher.user_event(UserSessionsRevoked(f"U-{sid}", now_ms(), "admin"))
                    for sid in batch]
        for ack in acks:
            ack.get(timeout=30)  # the broker has appended every revoke of the batch
        for sid in batch:
            intent = Intent(f"i-{sid}", sid, f"U-{sid}", "account.delete", "a/1", now_ms(),
                            "192.0.2.5", "D1", "api", "race")
            publisher.intent(intent)
            intent_ids.append(intent.intent_id)
        publisher.flush()
    decisions = reader.wait_for(intent_ids, timeout_s=180)
    elapsed = time.monotonic() - started
    publisher.close()
    reader.close()

    outcome = Counter(f"{d.verdict.value}/{d.reason.value}" for d in decisions.values())
    with capsys.disabled():
        print(f"\nrace ({kind} revocations, barrier {budget}, backlog {backlog}): "
              f"{len(decisions)} decisions "
              f"in {elapsed:.1f} s: {dict(outcome)}")
    assert len(decisions) == RACES
    assert not any(d.allowed for d in decisions.values()), outcome
    assert set(outcome) <= {"deny/revoked", "deny/state_unavailable", "deny/stale_intent"}
