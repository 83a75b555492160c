"""The eight cases, shifted to now, through the real broker and the live worker.

Each intent gets a history of its own: the lifecycle lines before it in its case,
moved in time so that the intent happens at a common instant T a few seconds
ahead; the histories are published first, then at T every intent at once.
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
from doublelock.events import Activity, Intent
from doublelock.policy import parse_policy
from tests.cases import CASES
from workers.client import DecisionReader, Publisher
from workers.scenario import parse_instant, parse_line

pytestmark = pytest.mark.integration

# One worker and policy per run: the cases differ only in timeouts, so each case's
# policy runs in its own worker.
POLICIES = sorted({case.policy for case in CASES})


def _shifted(value: Any, delta: int, suffix: str) -> Any:
    changes: dict[str, Any] = {"session_id": value.session_id + suffix}
    for name in ("at", "auth_time", "expires_at", "occurred_at"):
        if hasattr(value, name) and getattr(value, name) is not None:
            changes[name] = getattr(value, name) + delta
    if isinstance(value, Intent):
        changes["intent_id"] = value.intent_id + suffix
    return dataclasses.replace(value, **changes)


def _no_offset_activity(line: dict[str, Any]) -> Activity:
    """Case 6's timestamp without an offset has no Avro form; its live twin is a
    timestamp in seconds instead of milliseconds, which is just as impossible."""
    naive = datetime.fromisoformat(line["at"])
    return Activity(line["session_id"], int(naive.timestamp()))


@pytest.mark.parametrize("policy_text", POLICIES, ids=lambda p: f"policy-{POLICIES.index(p)}")
def test_cases_through_live_worker(start_worker: Any, policy_text: str) -> None:
    worker = start_worker(policy_text)
    cases = [c for c in CASES if c.policy == policy_text]
    run = uuid.uuid4().hex[:6]
    target = time.time_ns() // 1_000_000 + 4_000
    expected: dict[str, tuple[str, str]] = {}
    absurd_sent = 0
    publisher, reader = Publisher(worker.settings), DecisionReader(worker.settings)
    intents: list[Intent] = []
    try:
        for case in cases:
            for position, line in enumerate(case.lines):
                if line["type"] != "intent":
                    continue
                at = parse_instant("at", line["at"])
                delta, suffix = target - at, f"-{line['intent_id']}-{run}"
                for earlier in case.lines[:position]:
                    if earlier["type"] == "intent":
                        continue
                    try:
                        publisher.lifecycle(_shifted(parse_line(earlier), delta, suffix))
                    except RejectedEvent:
                        bad = _no_offset_activity(earlier)
                        publisher.lifecycle(dataclasses.replace(
                            bad, session_id=bad.session_id + suffix))
                        absurd_sent += 1
                intent = _shifted(parse_line(line), delta, suffix)
                intents.append(intent)
                expected[intent.intent_id] = case.expected[line["intent_id"]]
        publisher.flush()
        time.sleep(max(0.0, target / 1000 - time.time()))
        for intent in intents:
            publisher.intent(intent)
        publisher.flush()
        decisions = reader.wait_for(expected, timeout_s=30)
    finally:
        publisher.close()
        reader.close()

    got = {i: (d.verdict.value, d.reason.value) for i, d in decisions.items()}
    assert got == expected
    version = parse_policy(policy_text.encode()).version
    assert {d.policy_version for d in decisions.values()} == {version}

    log = worker.stop()
    assert "Traceback" not in log, log[-3000:]
    store = Store(worker.settings.dsn)
    try:
        denied = {i for i, v in expected.items() if v[0] != "allow"}
        rows = store.sql(
            "SELECT intent_id, verdict, reason FROM blocked_attempts "
            "WHERE intent_id IN {ids:Array(String)}", {"ids": sorted(expected)})
        assert {r[0]: (r[1], r[2]) for r in rows} == {i: expected[i] for i in denied}
        stored = store.sql("SELECT count() FROM decisions FINAL "
                           "WHERE intent_id IN {ids:Array(String)}", {"ids": sorted(expected)})
        assert stored == [(len(expected),)]
        rejected = store.sql("SELECT kind, count() FROM rejections GROUP BY kind")
        assert dict(rejected) == ({"absurd_timestamp": absurd_sent} if absurd_sent else {})
    finally:
        store.close()
