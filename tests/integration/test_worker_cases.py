"""Every case, shifted to now, through the real broker and the live worker.

Each intent gets a history of its own: the lifecycle and user lines before it in
its case, moved in time so that the intent happens at a common instant T a few
seconds ahead, with ids of its own; the histories are published first, then at T
every intent at once. An intent id seen again in its case is sent again with the
first one's ids, to meet the first decision.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from datetime import datetime
from typing import Any

import pytest

from dashboards.store import Store
from doublelock.errors import RejectedEvent
from doublelock.events import Activity, Intent, UserSessionsRevoked
from doublelock.policy import parse_policy
from tests.cases import ALL_CASES, occurrence
from workers.client import DecisionReader, Publisher
from workers.scenario import parse_instant, parse_line

pytestmark = pytest.mark.integration

# One worker and policy per run: the cases differ only in timeouts, so each case's
# policy runs in its own worker.
POLICIES = sorted({case.policy for case in ALL_CASES})
IDS = ("session_id", "new_session_id", "parent_session_id", "except_session_id", "user_id",
       "intent_id")
TIMES = ("at", "auth_time", "expires_at", "occurred_at")


def _shifted(value: Any, delta: int, suffix: str) -> Any:
    """The line with its times moved by ``delta`` and every id its own (a password
    reset must not reach another case's user)."""
    changes: dict[str, Any] = {}
    for name in IDS:
        if getattr(value, name, None):
            changes[name] = getattr(value, name) + suffix
    for name in TIMES:
        if getattr(value, name, None) is not None:
            changes[name] = getattr(value, name) + delta
    return dataclasses.replace(value, **changes)


def _no_offset_activity(line: dict[str, Any]) -> Activity:
    """Case 6's timestamp without an offset has no Avro form; its live twin is a
    timestamp in seconds instead of milliseconds, which is just as impossible."""
    naive = datetime.fromisoformat(line["at"])
    return Activity(line["session_id"], int(naive.timestamp()))


def _publish(publisher: Publisher, line: dict[str, Any], delta: int, suffix: str) -> int:
    """Publish a history line; 1 if it is the absurd one of case 6."""
    try:
        value = _shifted(parse_line(line), delta, suffix)
    except RejectedEvent:
        bad = _no_offset_activity(line)
        publisher.lifecycle(dataclasses.replace(bad, session_id=bad.session_id + suffix))
        return 1
    if isinstance(value, UserSessionsRevoked):
        publisher.user_event(value)
    else:
        publisher.lifecycle(value)
    return 0


@pytest.mark.parametrize("policy_text", POLICIES, ids=lambda p: f"policy-{POLICIES.index(p)}")
def test_cases_through_live_worker(start_worker: Any, policy_text: str) -> None:
    worker = start_worker(policy_text)
    cases = [c for c in ALL_CASES if c.policy == policy_text]
    run = uuid.uuid4().hex[:6]
    target = time.time_ns() // 1_000_000 + 4_000
    expected: dict[str, tuple[str, str]] = {}
    counts: dict[str, int] = {}
    absurd_sent = 0
    publisher, reader = Publisher(worker.settings), DecisionReader(worker.settings)
    intents: list[Intent] = []
    try:
        for case in cases:
            first_seen: dict[str, tuple[int, str]] = {}  # intent id → (delta, suffix)
            for position, line in enumerate(case.lines):
                if line["type"] != "intent":
                    continue
                name = line["intent_id"]
                if name in first_seen:
                    delta, suffix = first_seen[name]
                else:
                    delta = target - parse_instant("at", line["at"])
                    suffix = f"-{name}-{run}"
                    first_seen[name] = delta, suffix
                    for earlier in case.lines[:position]:
                        if earlier["type"] != "intent":
                            absurd_sent += _publish(publisher, earlier, delta, suffix)
                intent = _shifted(parse_line(line), delta, suffix)
                intents.append(intent)
                counts[intent.intent_id] = counts.get(intent.intent_id, 0) + 1
                key = occurrence(intent.intent_id, counts[intent.intent_id])
                expected[key] = case.expected[occurrence(name, counts[intent.intent_id])]
        publisher.flush()
        time.sleep(max(0.0, target / 1000 - time.time()))
        for intent in intents:
            publisher.intent(intent)
        publisher.flush()
        gathered = reader.gather(counts, timeout_s=30)
    finally:
        publisher.close()
        reader.close()

    got = {occurrence(i, n): (d.verdict.value, d.reason.value)
           for i, decisions in gathered.items() for n, d in enumerate(decisions, start=1)}
    assert got == expected
    version = parse_policy(policy_text.encode()).version
    assert {d.policy_version for ds in gathered.values() for d in ds} == {version}

    log = worker.stop()
    assert "Traceback" not in log, log[-3000:]
    store = Store(worker.settings.dsn)
    try:
        # One row per intent: the first decision stands; a duplicate is a rejection.
        firsts = {i: v for i, v in expected.items() if "#" not in i}
        denied = {i for i, v in firsts.items() if v[0] != "allow"}
        rows = store.sql(
            "SELECT intent_id, verdict, reason FROM blocked_attempts "
            "WHERE intent_id IN {ids:Array(String)}", {"ids": sorted(firsts)})
        assert {r[0]: (r[1], r[2]) for r in rows} == {i: firsts[i] for i in denied}
        stored = store.sql("SELECT count() FROM decisions FINAL "
                           "WHERE intent_id IN {ids:Array(String)}", {"ids": sorted(firsts)})
        assert stored == [(len(firsts),)]
        rejected = dict(store.sql("SELECT kind, count() FROM rejections GROUP BY kind"))
        duplicates = len(expected) - len(firsts)
        assert rejected == {k: n for k, n in (("absurd_timestamp", absurd_sent),
                                              ("duplicate_intent", duplicates)) if n}
    finally:
        store.close()
