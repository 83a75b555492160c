"""Counters and timings the worker logs once per interval."""

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
    redelivered: int = 0  # decisions re-emitted for records delivered again
    revocations: int = 0  # the global view's size: user revocations, links, revoked
    forgotten: int = 0  # table entries forgotten: ended sessions, intents past their window
    unroutable: int = 0  # decisions sent to the decisions topic, not where the intent asked
    # Per interval, in ms: the barrier's wait, and intent received → decision produced.
    barrier_ms: list[float] = field(default_factory=list)
    decide_ms: list[float] = field(default_factory=list)
    _last_decided: int = 0
    _last_time: float = field(default_factory=time.monotonic)

    def record_decision(self, verdict: str, reason: str) -> None:
        self.decided += 1
        self.verdicts[verdict] += 1
        if verdict != "allow":
            self.denied_by_reason[reason] += 1

    def timed(self, samples: list[float], started: float) -> None:
        if len(samples) < 100_000:  # bounded between two summaries
            samples.append((time.monotonic() - started) * 1000)

    def summary(self, lag: int) -> str:
        now = time.monotonic()
        rate = (self.decided - self._last_decided) / max(now - self._last_time, 1e-9)
        self._last_decided, self._last_time = self.decided, now
        blocked = ", ".join(f"{r}={n}" for r, n in self.denied_by_reason.most_common()) or "none"
        rejected = ", ".join(f"{k}={n}" for k, n in self.rejected.most_common()) or "none"
        timings = (f"barrier_ms[{_percentiles(self.barrier_ms)}] "
                   f"decide_ms[{_percentiles(self.decide_ms)}]")
        self.barrier_ms, self.decide_ms = [], []
        return (f"decided={self.decided} ({rate:.1f}/s) blocked[{blocked}] "
                f"lifecycle_applied={self.applied} rejected[{rejected}] "
                f"send_failures={self.send_failures} redelivered={self.redelivered} "
                f"revocations={self.revocations} forgotten={self.forgotten} "
                f"unroutable={self.unroutable} "
                f"intents_lag={lag} {timings}")


def _percentiles(samples: list[float]) -> str:
    if not samples:
        return "none"
    ordered = sorted(samples)

    def at(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))]

    return f"p50={at(0.5):.2f} p99={at(0.99):.2f} max={ordered[-1]:.2f}"
