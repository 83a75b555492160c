"""A worker of its own for a benchmark: topics with a fresh prefix, a data dir in
/tmp, removed afterwards (the broker must be up: ``doublelock kafka up``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from workers.client import wait_until_deciding
from workers.settings import Settings
from workers.topics import delete_topics, ensure_topics


@dataclass(frozen=True)
class BenchWorker:
    settings: Settings
    process: subprocess.Popen[bytes]
    log: Path
    run: str


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


@contextmanager
def bench_worker(**extra_env: str) -> Iterator[BenchWorker]:
    run = uuid.uuid4().hex[:8]
    data_dir = tempfile.mkdtemp(prefix="doublelock-bench-")
    env = {"DOUBLELOCK_TOPIC_PREFIX": f"bench-{run}.", "DOUBLELOCK_APP_ID": f"bench-{run}",
           "DOUBLELOCK_DATA_DIR": data_dir, "DOUBLELOCK_REPORT_INTERVAL_MS": "5000",
           **extra_env}
    settings = Settings.from_env({**os.environ, **env})
    ensure_topics(settings)
    log = Path(data_dir) / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen([sys.executable, "-m", "workers.cli", "worker"],
                                  env={**os.environ, **env}, stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        wait_until_deciding(settings, worker)
        yield BenchWorker(settings, worker, log, run)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        delete_topics(settings, {f"bench-{run}"})


def print_worker_summaries(log: Path) -> None:
    """The worker's own view, per 5 s: barrier wait and receive → produce, in ms."""
    print("worker summaries (every 5 s):")
    with log.open(errors="replace") as lines:
        for line in lines:
            if "worker: decided=" in line or "worker stopping:" in line:
                print("  " + line.split("] ", 3)[-1].strip())
