"""Benchmark: the live worker through the real broker. Prints figures; asserts nothing.

    python -m bench.worker_roundtrip [--burst N] [--rate R] [--seconds S]

Burst: N intents published at once, time until the last decision arrives.
Paced: R intents/s for S seconds, latency publish → decision received.
Then the worker's own summaries: the barrier's wait and receive → produce, per 5 s.
The broker must run (``doublelock kafka up``); the worker runs on topics of its own.
"""

from __future__ import annotations

import argparse
import time

from bench.live import bench_worker, percentile, print_worker_summaries, rss_mib
from doublelock.events import Intent, SessionCreated
from workers.client import DecisionReader, Publisher


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def main() -> None:
    args = argparse.ArgumentParser()
    args.add_argument("--burst", type=int, default=20_000)
    args.add_argument("--rate", type=float, default=500)
    args.add_argument("--seconds", type=float, default=10)
    args.add_argument("--sessions", type=int, default=2_000)
    opts = args.parse_args()

    with bench_worker() as live:
        settings, worker, run = live.settings, live.process, live.run
        publisher, reader = Publisher(settings), DecisionReader(settings)
        at = now_ms()
        sessions = [f"bs-{run}-{i}" for i in range(opts.sessions)]
        for sid in sessions:
            publisher.lifecycle(SessionCreated(sid, at, "U", at, 2, "192.0.2.1", "D"))
        publisher.flush()

        def intent(i: int) -> Intent:
            return Intent(f"bi-{run}-{i}", sessions[i % len(sessions)], "U", "report.view", "r",
                          now_ms(), "192.0.2.1", "D", "api", "bench")

        start = time.monotonic()
        ids = []
        for i in range(opts.burst):
            publisher.intent(intent(i))
            ids.append(f"bi-{run}-{i}")
        publisher.flush()
        got = reader.wait_for(ids, timeout_s=300)
        burst_s = time.monotonic() - start
        allowed = sum(d.verdict.value == "allow" for d in got.values())
        print(f"burst: {len(got):,} decisions in {burst_s:.2f} s = "
              f"{len(got) / burst_s:,.0f} decisions/s ({allowed:,} allowed); "
              f"worker RSS {rss_mib(worker.pid):.0f} MiB")

        sent: dict[str, float] = {}
        latencies: list[float] = []
        begin = time.monotonic()
        i = opts.burst
        while time.monotonic() - begin < opts.seconds or (
                sent and time.monotonic() - begin < opts.seconds + 30):
            while time.monotonic() - begin < opts.seconds and i - opts.burst < (
                    time.monotonic() - begin) * opts.rate:
                item = intent(i)
                publisher.intent(item)
                sent[item.intent_id] = time.monotonic()
                i += 1
            publisher.flush()
            for decision in reader.poll(0.005):
                t0 = sent.pop(decision.intent_id, None)
                if t0 is not None:
                    latencies.append((time.monotonic() - t0) * 1000)
        print(f"paced {opts.rate:.0f}/s for {opts.seconds:.0f} s: {len(latencies):,} decisions, "
              f"latency p50 {percentile(latencies, 0.5):.1f} ms, "
              f"p95 {percentile(latencies, 0.95):.1f} ms, "
              f"p99 {percentile(latencies, 0.99):.1f} ms, "
              f"max {max(latencies):.1f} ms; worker RSS {rss_mib(worker.pid):.0f} MiB")
        publisher.close()
        reader.close()
    print_worker_summaries(live.log)


if __name__ == "__main__":
    main()
