"""Test tiers: tests/unit (pure, no services) and tests/integration (the real Kafka
broker, started here, and chdb). A missing service fails the integration tests;
nothing is skipped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from workers.broker import Broker
from workers.settings import Settings
from workers.topics import delete_topics

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def broker() -> Iterator[Settings]:
    """The project's real Kafka broker (started unless it runs); left running after."""
    settings = Settings.from_env()
    Broker(settings).up()
    yield settings


@dataclass
class RunningWorker:
    settings: Settings
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.log.read_text(errors="replace")


@pytest.fixture
def start_worker(broker: Settings, tmp_path: Path) -> Iterator[object]:
    """Start ``doublelock worker`` in a subprocess on topics of its own."""
    workers: list[RunningWorker] = []

    def start(policy_text: str | None = None, like: RunningWorker | None = None,
              **env: str) -> RunningWorker:
        """A new worker; ``like`` another one: the same topics and app id (its consumer
        group and changelog) with a data dir of its own."""
        run = uuid.uuid4().hex[:8]
        data_dir = tmp_path / f"worker-{run}"
        data_dir.mkdir()
        values = {
            "DOUBLELOCK_TOPIC_PREFIX": f"test-{run}.",
            "DOUBLELOCK_APP_ID": f"test-{run}",
            **({} if like is None else like.env),
            "DOUBLELOCK_DATA_DIR": str(data_dir),
            "DOUBLELOCK_PARTITIONS": "4",
            "DOUBLELOCK_REPORT_INTERVAL_MS": "2000",
            "DOUBLELOCK_FLUSH_INTERVAL_MS": "200",
            "DOUBLELOCK_DASHBOARD_PORT": "0",  # any free port: workers run side by side
            "DOUBLELOCK_ALERT_INTERVAL_MS": "0",
        }
        if policy_text is not None:
            policy = data_dir / "policy.toml"
            policy.write_text(policy_text)
            values["DOUBLELOCK_POLICY"] = str(policy)
        values.update(env)
        log = data_dir / "worker.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "worker"], cwd=ROOT,
            env={**os.environ, **values}, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        )
        settings = Settings.from_env({**os.environ, **values})
        worker = RunningWorker(settings, process, log, values)
        workers.append(worker)
        _wait_ready(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()
    # Their topics and changelogs all start with the app id.
    delete_topics(broker, {w.env["DOUBLELOCK_APP_ID"] for w in workers})


def _wait_ready(worker: RunningWorker, timeout: float = 90.0) -> None:
    from doublelock.errors import ServiceError
    from workers.client import wait_until_deciding
    from workers.topics import ensure_topics

    ensure_topics(worker.settings)  # the reader needs the decisions topic to exist
    try:
        wait_until_deciding(worker.settings, worker.process, timeout)
    except ServiceError as exc:
        pytest.fail(f"{exc}:\n{worker.log.read_text(errors='replace')[-4000:]}")
