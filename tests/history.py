"""A day of decisions with known patterns planted in ordinary traffic, for the panels'
tests: each detector must find exactly what is planted here (and nothing in the noise).
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from dashboards.panels import Window
from dashboards.store import Source, Store, decision_row
from doublelock.events import MINUTE, SECOND, Intent, Millis
from doublelock.verdict import Decision, Reason, Verdict

DAY: Final = datetime(2026, 5, 12, tzinfo=UTC)  # a Tuesday
WINDOW: Final = Window(DAY, DAY + timedelta(days=1))


def at(hour: int, minute: int = 0, second: float = 0) -> Millis:
    return int((DAY + timedelta(hours=hour, minutes=minute, seconds=second)).timestamp() * 1000)


@dataclass
class History:
    rows: list[list[Any]] = field(default_factory=list)
    offset: int = 0

    def add(self, when: Millis, user: str, session: str, action: str, verdict: Verdict,
            reason: Reason, ip: str = "", device: str = "", app: str = "web",
            dead_for_ms: Millis | None = None, intent_id: str = "") -> None:
        self.offset += 1
        iid = intent_id or f"i{self.offset}"
        decision = Decision(iid, session, user, action, verdict, reason, when + 5, when + 10_005,
                            "test", 60_000, 1_000, 60_000, "", dead_for_ms=dead_for_ms)
        ip = ip or f"198.51.100.{zlib.crc32(user.encode()) % 200}"  # one per user
        intent = Intent(iid, session, user, action, "r", when, ip, device or f"dev-{user}",
                        "ui", app)
        self.rows.append(decision_row(decision, intent, Source("intents", 0, self.offset)))


def planted() -> History:
    """Noise: 40 users doing ordinary things all day, a few scattered refusals. Planted:
    a burst from one IP, a burst spread over one /24, a hijacked session with follow-ups
    on the user's other sessions, a stale-tab habit, use after logout, step-up friction."""
    h, rnd = History(), random.Random(5)
    for i in range(600):  # allowed traffic, each user from their own IP and device
        user = f"u{i % 40}"
        h.add(at(rnd.randrange(24), rnd.randrange(60)), user, f"s-{user}", "report.view",
              Verdict.ALLOW, Reason.OK, ip=f"198.51.100.{i % 40}", device=f"dev-{user}")
    for i in range(6):  # scattered refusals, below every threshold
        user = f"u{i}"
        h.add(at(3 + 3 * i, 7), user, f"s-{user}", "doc.delete", Verdict.DENY,
              Reason.EXPIRED_ABSOLUTE, ip=f"198.51.100.{i}", device=f"dev-{user}")

    # Burst 1: one IP, 40 attempts over 20 users, 10:01-10:03.
    for i in range(40):
        h.add(at(10, 1, i * 3), f"victim{i % 20}", f"stolen-{i}", "account.delete",
              Verdict.DENY, Reason.UNKNOWN_SESSION, ip="203.0.113.66", device=f"bot-{i}")
    # Burst 2: a /24, one attempt per address, 30 over 15 users, 14:10-14:12.
    for i in range(30):
        h.add(at(14, 10, i * 4), f"target{i % 15}", f"cookie-{i}", "payments.transfer",
              Verdict.DENY, Reason.REVOKED, ip=f"203.0.114.{i + 1}", device="spray",
              dead_for_ms=3_600_000)

    # Hijack: the victim's session from a second place, then their other sessions.
    h.add(at(9, 0), "alice", "S-alice-1", "report.view", Verdict.ALLOW, Reason.OK,
          ip="198.51.100.201", device="alice-laptop")
    for k in range(3):
        h.add(at(9, 30, k * 10), "alice", "S-alice-1", "payments.transfer", Verdict.DENY,
              Reason.CONTEXT_MISMATCH, ip="192.0.2.99", device="evil")
    for k, sid in enumerate(("S-alice-2", "S-alice-3")):
        h.add(at(9, 32, k * 10), "alice", sid, "payments.transfer", Verdict.DENY,
              Reason.CONTEXT_MISMATCH, ip="192.0.2.99", device="evil")

    # The stale-tab habit: sleepy (crm) five times, minutes to hours past the timeout.
    for k, past in enumerate((2, 4, 12, 45, 180)):
        h.add(at(8 + 2 * k, 20), "sleepy", f"S-sleepy-{k}", "deal.delete", Verdict.DENY,
              Reason.EXPIRED_IDLE, app="crm", dead_for_ms=past * MINUTE)
    h.add(at(16, 0), "tidy", "S-tidy", "deal.delete", Verdict.DENY, Reason.EXPIRED_IDLE,
          app="crm", dead_for_ms=30 * SECOND)  # once only: no habit

    # Use after logout: zombie, four attempts on two dead sessions.
    for k in range(4):
        h.add(at(19, 5 * k), "zombie", f"S-zombie-{k % 2}", "doc.publish", Verdict.DENY,
              Reason.REVOKED, app="cms", dead_for_ms=(k + 1) * 10 * MINUTE)

    # Step-up friction: transfers stepped up 10 times, 6 retried and allowed within 2 min;
    # role grants stepped up 3 times, never retried.
    for k in range(10):
        sid = f"S-payer-{k}"
        h.add(at(12, 3 * k), f"payer{k}", sid, "payments.transfer", Verdict.STEP_UP,
              Reason.REAUTH_REQUIRED)
        if k < 6:
            h.add(at(12, 3 * k + 1), f"payer{k}", sid, "payments.transfer", Verdict.ALLOW,
                  Reason.OK)
    for k in range(3):
        h.add(at(13, 10 * k), "admin", f"S-admin-{k}", "role.grant", Verdict.STEP_UP,
              Reason.REAUTH_REQUIRED)
    return h


def load(store: Store, history: History) -> None:
    store.insert_decisions(history.rows)
    store.insert_decisions(history.rows[:50])  # redelivered: counted once everywhere
