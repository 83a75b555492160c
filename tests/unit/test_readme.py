"""The README's policy-simulation example runs as written and prints what it shows."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_readme_decide_example_output_matches() -> None:
    command = next(line for line in README.splitlines()
                   if line.startswith(".venv/bin/doublelock decide"))
    args = shlex.split(command)[1:]
    result = subprocess.run([sys.executable, "-m", "workers.cli", *args], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    shown = [json.loads(m.group(1) + "}") for m in
             re.finditer(r'^(\{"intent_id": .*?), \.\.\.\}$', README, flags=re.M)]
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(shown) == len(printed) == 3
    for want, got in zip(shown, printed, strict=True):
        assert {k: got[k] for k in want} == want
