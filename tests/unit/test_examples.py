"""The example scenarios under examples/ decide as their comments in the docs say."""

from __future__ import annotations

from pathlib import Path

import pytest

from doublelock.policy import load_policy
from workers.decide import replay

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scenarios"

EXPECTED = {
    "stolen_session.jsonl": [("I1", "allow", "ok"), ("I2", "deny", "context_mismatch"),
                             ("I3", "deny", "revoked")],
    "stale_tab_and_step_up.jsonl": [("T1", "step_up", "reauth_required"), ("T2", "allow", "ok"),
                                    ("T3", "deny", "expired_idle")],
}


def test_every_example_is_checked() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.jsonl")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_decides_as_documented(name: str) -> None:
    with (EXAMPLES / name).open() as source:
        results = [r for _, r in replay(source, load_policy())]
    assert [(d.intent_id, d.verdict.value, d.reason.value) for d in results] == EXPECTED[name]
