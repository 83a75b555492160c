"""The eight cases through ``doublelock decide`` (event-time replay)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from doublelock.errors import RejectedEvent
from doublelock.policy import parse_policy
from tests.cases import CASES, Case
from workers.decide import replay


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_case_replay(case: Case) -> None:
    source = io.StringIO("".join(json.dumps(line) + "\n" for line in case.lines))
    decisions, rejected = {}, []
    for number, result in replay(source, parse_policy(case.policy.encode())):
        if isinstance(result, RejectedEvent):
            rejected.append(number)
        else:
            decisions[result.intent_id] = (result.verdict.value, result.reason.value)
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
