"""The eight cases through ``doublelock decide`` (event-time replay)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from doublelock.errors import RejectedEvent
from doublelock.policy import parse_policy
from streams.admission import partition_of
from tests.cases import ALL_CASES, CASE_R4_SESSIONS, CASES, Case, occurrence
from workers.decide import replay


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.name)
def test_case_replay(case: Case) -> None:
    source = io.StringIO("".join(json.dumps(line) + "\n" for line in case.lines))
    decisions, rejected, seen = {}, [], Counter[str]()
    for number, result in replay(source, parse_policy(case.policy.encode())):
        if isinstance(result, RejectedEvent):
            rejected.append(number)
        else:
            seen[result.intent_id] += 1
            key = occurrence(result.intent_id, seen[result.intent_id])
            decisions[key] = (result.verdict.value, result.reason.value)
    assert decisions == case.expected
    assert rejected == case.rejected


def test_decide_command_prints_one_json_line_per_intent(tmp_path: Path) -> None:
    case = next(c for c in CASES if c.name.startswith("6"))
    scenario, policy_file = tmp_path / "s.jsonl", tmp_path / "p.toml"
    scenario.write_text("".join(json.dumps(line) + "\n" for line in case.lines)
                        + "not json\n")
    policy_file.write_text(case.policy)
    result = subprocess.run(
        [sys.executable, "-m", "workers.cli", "decide", "--policy", str(policy_file),
         str(scenario)], capture_output=True, text=True, check=True,
    )
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(d["intent_id"], d["verdict"], d["reason"]) for d in out] == [
        ("I6", "deny", "expired_idle")]
    assert out[0]["policy_version"] == parse_policy(case.policy.encode()).version
    assert out[0]["evidence"]["idle_ms"] == 30 * 60 * 1000
    assert "line 2: rejected (absurd_timestamp)" in result.stderr
    assert "line 4: rejected (malformed): not JSON" in result.stderr


def test_an_unusable_intent_line_still_gets_one_decision() -> None:
    case = CASES[0]
    broken = dict(case.lines[-1], intent_id="I-broken", at="2026-04-07T08:22:00")  # no offset
    nameless = {"type": "intent", "session_id": "S1"}
    lines = [*case.lines, broken, nameless]
    source = io.StringIO("".join(json.dumps(line) + "\n" for line in lines))
    results = list(replay(source, parse_policy(case.policy.encode())))
    decisions = [(n, r.intent_id, r.verdict.value, r.reason.value, r.decided_at)
                 for n, r in results if not isinstance(r, RejectedEvent)]
    rejected = [(n, r.kind) for n, r in results if isinstance(r, RejectedEvent)]
    last_time = decisions[0][4]  # 08:21, the last usable line
    assert decisions == [
        (4, "I1", "deny", "revoked", last_time),
        (5, "I-broken", "deny", "malformed", last_time),
        (6, "line-6", "deny", "malformed", last_time),
    ]
    assert rejected == [(5, "absurd_timestamp"), (6, "missing_field")]


def test_a_zero_ttl_policy_is_refused() -> None:
    from doublelock.errors import PolicyError

    with pytest.raises(PolicyError, match="longer than 0"):
        parse_policy(b'[decision]\nttl = "0s"\n')


def test_the_password_reset_case_spans_two_partitions() -> None:
    a, b = (partition_of(sid.encode(), 4) for sid in CASE_R4_SESSIONS)
    assert a != b
