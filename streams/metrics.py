"""Counters the worker logs once per interval."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Metrics:
    decided: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    denied_by_reason: Counter[str] = field(default_factory=Counter)
    applied: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    send_failures: int = 0
    _last_decided: int = 0
    _last_time: float = field(default_factory=time.monotonic)

    def record_decision(self, verdict: str, reason: str) -> None:
        self.decided += 1
        self.verdicts[verdict] += 1
        if verdict != "allow":
            self.denied_by_reason[reason] += 1

    def summary(self, lag: int) -> str:
        now = time.monotonic()
        rate = (self.decided - self._last_decided) / max(now - self._last_time, 1e-9)
        self._last_decided, self._last_time = self.decided, now
        blocked = ", ".join(f"{r}={n}" for r, n in self.denied_by_reason.most_common()) or "none"
        rejected = ", ".join(f"{k}={n}" for k, n in self.rejected.most_common()) or "none"
        return (f"decided={self.decided} ({rate:.1f}/s) blocked[{blocked}] "
                f"lifecycle_applied={self.applied} rejected[{rejected}] "
                f"send_failures={self.send_failures} intents_lag={lag}")
