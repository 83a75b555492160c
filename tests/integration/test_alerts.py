"""The worker serves the dashboard over the store it owns, and its detectors publish
alerts to doublelock.alerts, once per detector, subject and window."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer

from doublelock.events import Intent, LoggedOut, SessionCreated
from schemas.codec import Codec
from tests.live import ask
from workers.client import DecisionReader, Publisher

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def dashboard_url(log: Path, timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = re.search(r"dashboard at (http://\S+/)", log.read_text(errors="replace"))
        if found:
            return found.group(1)
        time.sleep(0.2)
    raise AssertionError("the worker never said where its dashboard is")


def test_detectors_publish_each_alert_once_and_the_worker_serves_the_dashboard(
    start_worker: Any,
) -> None:
    worker = start_worker(None, DOUBLELOCK_ALERT_INTERVAL_MS="1000")
    url = dashboard_url(worker.log)
    run = uuid.uuid4().hex[:6]
    publisher, reader = Publisher(worker.settings), DecisionReader(worker.settings)
    # A burst: 12 attempts from one address on sessions of 6 users that do not exist.
    attacker = "203.0.113.77"
    intents = [Intent(f"burst-{run}-{i}", f"forged-{run}-{i}", f"user{i % 6}", "account.delete",
                      "a/1", now_ms(), attacker, "bot", "api", "web") for i in range(12)]
    for intent in intents:
        publisher.intent(intent)
    publisher.flush()
    got = reader.gather({i.intent_id: 1 for i in intents}, 30)
    assert {d[0].reason.value for d in got.values()} == {"unknown_session"}
    # Use after logout, on a session of its own.
    sid, at = f"gone-{run}", now_ms()
    publisher.lifecycle(SessionCreated(sid, at, "zombie", at, 2, "192.0.2.5", "D1"))
    publisher.lifecycle(LoggedOut(sid, at + 1)).get(timeout=10)
    publisher.flush()
    for k in range(3):  # three attempts: a pattern worth an alert (one is a habit)
        assert ask(publisher, reader, Intent(f"dead-{run}-{k}", sid, "zombie", "doc.publish",
                                             "d/1", now_ms(), "192.0.2.5", "D1", "ui", "cms")
                   ).reason.value == "revoked"
    publisher.close()
    reader.close()

    codec = Codec()
    consumer = KafkaConsumer(worker.settings.topics.alerts,
                             bootstrap_servers=worker.settings.bootstrap,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=500)
    alerts: list[dict[str, Any]] = []
    deadline = time.monotonic() + 45
    wanted = {("burst_sources", attacker), ("burst_sources", "203.0.113.0/24"),
              ("dead_session_use", "zombie@cms")}
    while time.monotonic() < deadline and not wanted <= {(a["detector"], a["subject"])
                                                           for a in alerts}:
        alerts += [codec.decode_record(r.value)[1] for r in consumer]
    time.sleep(4)  # several more rounds of the detectors: nothing is published again
    alerts += [codec.decode_record(r.value)[1] for r in consumer]
    consumer.close()
    assert {(a["detector"], a["subject"]) for a in alerts} == wanted
    assert len({a["alert_id"] for a in alerts}) == len(alerts) == 3
    burst = next(a for a in alerts if a["subject"] == attacker)
    assert burst["evidence"]["attempts"] == "12" and burst["evidence"]["users"] == "6"
    assert sorted(burst["intent_ids"]) == sorted(i.intent_id for i in intents)

    # The dashboard is the worker's: its store, its numbers.
    with urllib.request.urlopen(f"{url}api/panels/top_ips?limit=1") as answer:
        top = json.load(answer)["rows"]
    assert (top[0]["ip"], top[0]["blocked"]) == (attacker, 12)
    report = subprocess.run(
        [sys.executable, "-m", "workers.cli", "report", "--dashboard", url, "--since", "1h",
         "--panel", "burst_sources", "--format", "json"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert attacker in {r["source"] for r in json.loads(report)["panels"]["burst_sources"]}
