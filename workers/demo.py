"""``doublelock demo``: the whole product on this machine, with realistic traffic.

Starts the broker and a worker (embedded ClickHouse), plays stories of users and
attackers against it for a while, then stops the worker and prints what ClickHouse
holds. Every story is one an application would publish, timestamps included:

- normal work on a fresh session (allowed),
- a stale tab: idle past the timeout while heartbeats kept coming (expired_idle),
- use after logout (revoked),
- a stolen session replayed from another device and network (context_mismatch),
- a sensitive action on an old login: step_up, then re-authentication and a retry,
- a session past its absolute timeout despite steady activity (expired_absolute),
- garbage on the intents topic (malformed, dead-lettered).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

from dashboards.store import instant, redacted
from dashboards.web import jsonable
from doublelock.events import (
    MINUTE,
    SECOND,
    Activity,
    Heartbeat,
    Intent,
    LifecycleEvent,
    LoggedOut,
    Millis,
    Reauthenticated,
    SessionCreated,
)
from doublelock.verdict import Decision
from workers.broker import Broker
from workers.client import DecisionReader, Publisher, wait_until_deciding
from workers.report import from_dashboard, render, window
from workers.settings import Settings
from workers.topics import ensure_topics

APPS = ("console", "billing", "admin-portal")
EVERYDAY = ("project.view", "report.view", "comment.create", "file.upload")
SENSITIVE = ("account.delete", "payments.transfer", "project.transfer_ownership",
             "role.edit", "repo.delete", "data.export")


def now_ms() -> Millis:
    return time.time_ns() // 1_000_000


@dataclass
class Session:
    session_id: str
    user_id: str
    ip: str
    device_id: str
    app: str


@dataclass
class Traffic:
    publisher: Publisher
    rng: random.Random
    users: int
    sent: dict[str, float] = field(default_factory=dict)  # intent_id → monotonic send time
    retries: dict[str, Session] = field(default_factory=dict)  # step_up → retry after re-auth

    def session(self, minutes_ago: float, level: int = 1,
                user: str | None = None) -> tuple[Session, SessionCreated]:
        user = user or f"user-{self.rng.randrange(self.users):04d}"
        # Home and office addresses all over the (carrier-grade NAT) map: ordinary
        # users share no /24, so a burst detector sees only the attackers.
        s = Session(f"sess-{uuid.uuid4().hex[:12]}", user,
                    f"100.{self.rng.randrange(64, 128)}.{self.rng.randrange(256)}."
                    f"{self.rng.randrange(1, 255)}",
                    f"dev-{self.rng.randrange(16**6):06x}", self.rng.choice(APPS))
        at = now_ms() - int(minutes_ago * MINUTE)
        return s, SessionCreated(s.session_id, at, s.user_id, at, level, s.ip, s.device_id)

    def active(self, s: Session, created: SessionCreated, every: float = 10) -> list[Activity]:
        """Real requests every few minutes from login until just now."""
        times = range(created.at + int(every * MINUTE), now_ms() - 10 * SECOND,
                      int(every * MINUTE))
        return [Activity(s.session_id, at) for at in times] + [
            Activity(s.session_id, now_ms() - 10 * SECOND)]

    def emit(self, *events: LifecycleEvent) -> None:
        for event in events:
            self.publisher.lifecycle(event)

    def intent(self, s: Session, action: str, ip: str | None = None,
               device: str | None = None) -> str:
        intent = Intent(f"int-{uuid.uuid4().hex[:16]}", s.session_id, s.user_id, action,
                        f"{action.split('.')[0]}/{self.rng.randrange(1000)}", now_ms(),
                        ip or s.ip, device or s.device_id, self.rng.choice(("ui", "api")), s.app)
        self.publisher.intent(intent)
        self.sent[intent.intent_id] = time.monotonic()
        return intent.intent_id

    # -- the stories -------------------------------------------------------
    def normal(self) -> None:
        s, created = self.session(self.rng.uniform(0.5, 3), level=2)
        self.emit(created, Activity(s.session_id, now_ms() - 20 * SECOND))
        for _ in range(self.rng.randint(1, 3)):
            self.intent(s, self.rng.choice(EVERYDAY))
        if self.rng.random() < 0.5:
            self.intent(s, self.rng.choice(SENSITIVE))  # fresh login: allowed

    def stale_tab(self) -> None:
        idle = self.rng.uniform(31, 90)
        # Half of them are the same few people, who leave tabs open all day.
        habitual = f"user-{self.rng.randrange(4):04d}" if self.rng.random() < 0.5 else None
        s, created = self.session(idle + 10, user=habitual)
        last = now_ms() - int(idle * MINUTE)
        beats = [Heartbeat(s.session_id, last + i * MINUTE) for i in range(1, int(idle))]
        self.emit(created, Activity(s.session_id, last), *beats)
        self.intent(s, self.rng.choice(EVERYDAY + SENSITIVE))

    def after_logout(self) -> None:
        s, created = self.session(self.rng.uniform(5, 20))
        self.emit(created, LoggedOut(s.session_id, now_ms() - int(self.rng.uniform(1, 4) * MINUTE)))
        self.intent(s, self.rng.choice(EVERYDAY + SENSITIVE))

    def stolen(self) -> None:
        s, created = self.session(self.rng.uniform(2, 10))
        self.emit(created, Activity(s.session_id, now_ms() - 30 * SECOND))
        self.intent(s, self.rng.choice(EVERYDAY))  # its owner, from home
        attacker = f"203.0.113.{self.rng.choice((66, 66, 66, 99, 140))}"  # a few hot sources
        self.intent(s, self.rng.choice(SENSITIVE), ip=attacker, device="dev-unknown")

    def hijack(self) -> None:
        """Several sessions of one user in an attacker's hands: the first is refused for
        its context, then the others are tried."""
        sessions = [self.session(self.rng.uniform(2, 30)) for _ in range(3)]
        victim = sessions[0][0].user_id
        attacker = f"192.0.2.{self.rng.randrange(2, 250)}"
        for s, created in sessions:
            s.user_id = victim
            self.emit(SessionCreated(s.session_id, created.at, victim, created.at, 1, s.ip,
                                     s.device_id), Activity(s.session_id, now_ms() - 20 * SECOND))
        for s, _ in sessions:
            self.intent(s, self.rng.choice(SENSITIVE), ip=attacker, device="dev-attacker")

    def needs_reauth(self) -> None:
        s, created = self.session(self.rng.uniform(20, 120), level=2)
        self.emit(created, *self.active(s, created))
        self.retries[self.intent(s, self.rng.choice(SENSITIVE[:4]))] = s

    def past_absolute(self) -> None:
        s, created = self.session(8 * 60 + self.rng.uniform(1, 30))
        self.emit(created, *self.active(s, created, every=20))
        self.intent(s, self.rng.choice(EVERYDAY))

    def garbage(self) -> None:
        self.publisher.raw(self.publisher.topics.intents, b"sess-garbage",
                           self.rng.randbytes(self.rng.randint(1, 64)),
                           headers=[("intent_id", f"int-garbage-{uuid.uuid4().hex[:8]}".encode())])

    def on_decision(self, decision: Decision) -> None:
        s = self.retries.pop(decision.intent_id, None)
        if s is not None and decision.verdict.value == "step_up":
            # The app prompted, the user proved it again: the retry is allowed.
            at = now_ms()
            self.emit(Reauthenticated(s.session_id, at, at, 2))
            self.intent(s, decision.action)

    def stories(self) -> list[tuple[float, Callable[[], None]]]:
        return [(0.54, self.normal), (0.12, self.stale_tab), (0.1, self.after_logout),
                (0.08, self.stolen), (0.01, self.hijack), (0.1, self.needs_reauth),
                (0.04, self.past_absolute), (0.01, self.garbage)]


def run_demo(settings: Settings, users: int = 200, seconds: float = 20.0,
             rate: float = 40.0, serve: bool = True) -> int:
    say = print
    say(f"doublelock demo: Kafka broker ({settings.kafka_version}) ...", flush=True)
    say(f"  {Broker(settings).up()}")
    ensure_topics(settings)
    log_path = settings.data_dir / "demo-worker.log"
    say(f"starting the worker (log: {log_path}) ...", flush=True)
    worker = subprocess.Popen([sys.executable, "-m", "workers.cli", "worker"],
                              env={**os.environ, **_env(settings)},
                              stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://{settings.dashboard_host}:{settings.dashboard_port}/"
    try:
        wait_until_deciding(settings, worker)
        started = instant(now_ms())  # after the readiness probe: the report is the traffic's
        latencies, decided = _play(settings, users, seconds, rate, say)
        latencies.sort()
        if latencies:
            p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
            say(f"\n{decided} decisions; latency intent→decision p50 {p50:.1f} ms, "
                f"p99 {p99:.1f} ms")
        time.sleep(2 * settings.flush_interval_ms / 1000 + 1)  # the sink's last rows
        # The worker owns the store: the report comes from its dashboard.
        w = window(None, started.isoformat(), None)
        panels = from_dashboard(url, w, ("totals", "verdict_ratio", "burst_sources",
                                         "hijack_followups", "dead_session_use",
                                         "stale_tabs", "step_up_friction", "top_ips"))
        if panels is None:
            say(f"the worker's dashboard does not answer at {url}: see {log_path}")
        else:
            say(f"What ClickHouse holds for this run ({redacted(settings.dsn)}):")
            render(panels, w, sys.stdout, color=sys.stdout.isatty())
        if serve and panels is not None:
            say(f"\nThe dashboard: {url}?from={quote(jsonable(started))}  (this run; the worker "
                "keeps deciding; Ctrl-C stops both)",
                flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while worker.poll() is None:
                    time.sleep(0.5)
    finally:
        say("stopping the worker ...", flush=True)
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    return 0


def _env(settings: Settings) -> dict[str, str]:
    return {"DOUBLELOCK_BOOTSTRAP": settings.bootstrap,
            "DOUBLELOCK_TOPIC_PREFIX": settings.topic_prefix,
            "DOUBLELOCK_CLICKHOUSE_DSN": settings.dsn,
            "DOUBLELOCK_DATA_DIR": str(settings.data_dir),
            "DOUBLELOCK_APP_ID": settings.app_id,
            "DOUBLELOCK_PARTITIONS": str(settings.partitions),
            "DOUBLELOCK_DASHBOARD_HOST": settings.dashboard_host,
            "DOUBLELOCK_DASHBOARD_PORT": str(settings.dashboard_port),
            # Alerts within the demo's 20 s, not a minute after.
            "DOUBLELOCK_ALERT_INTERVAL_MS": str(min(settings.alert_interval_ms, 5000))}


def _play(settings: Settings, users: int, seconds: float, rate: float,
          say: Callable[..., None]) -> tuple[list[float], int]:
    publisher, reader = Publisher(settings), DecisionReader(settings)
    traffic = Traffic(publisher, random.Random(7), users)
    weights, stories = zip(*traffic.stories(), strict=True)
    latencies: list[float] = []
    verdicts: Counter[str] = Counter()
    begin = time.monotonic()
    next_report = begin + 1
    due = 0.0
    try:
        while True:
            elapsed = time.monotonic() - begin
            if elapsed < seconds:
                while due < elapsed * rate:
                    traffic.rng.choices(stories, weights)[0]()
                    due += 1
                publisher.flush()
            elif not traffic.sent or elapsed > seconds + 30:
                break
            for decision in reader.poll(0.05):
                sent = traffic.sent.pop(decision.intent_id, None)
                if sent is None and not decision.intent_id.startswith("int-garbage"):
                    continue
                if sent is not None:
                    latencies.append((time.monotonic() - sent) * 1000)
                verdicts[f"{decision.verdict.value}/{decision.reason.value}"] += 1
                traffic.on_decision(decision)
            publisher.flush()
            if time.monotonic() >= next_report:
                next_report += 1
                top = ", ".join(f"{k} {n}" for k, n in verdicts.most_common(4))
                say(f"  {elapsed:5.1f}s  decided {sum(verdicts.values()):6d}  "
                    f"waiting {len(traffic.sent):4d}  | {top}", flush=True)
    finally:
        publisher.close()
        reader.close()
    return latencies, sum(verdicts.values())
