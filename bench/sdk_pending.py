"""Benchmark: the SDK's cost of waiting, with 1, 1k and 10k intents pending at once.
Prints figures; asserts nothing.

    python -m bench.sdk_pending [--pending 1000 10000]

For each size, that many ``check_async`` calls start together and wait on one
``Doublelock``. Reported: the time until the last decision, latency p50/p99 (mostly
the worker's queue), and what the SDK itself spends per decision: the reader thread's
dispatch (decode, verify, hand to the waiter) and the process's memory per pending
intent. The broker must run (``doublelock kafka up``); the worker runs on topics of
its own, signing with a throwaway key.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

from bench.live import bench_worker, percentile, print_worker_summaries, rss_mib
from doublelock.events import MINUTE
from sdk import Doublelock, Lifecycle, Subject

KEY = "bench-1:" + "b" * 40


async def wave(dl: Doublelock, subjects: list[Subject], size: int) -> dict[str, Any]:
    latencies: list[float] = []

    async def one(i: int) -> str:
        started = time.monotonic()
        decision = await dl.check_async(dl.intent(subjects[i % len(subjects)], "report.view"))
        latencies.append((time.monotonic() - started) * 1000)
        return decision.reason.value

    rss_before = rss_mib(os.getpid())
    begin = time.monotonic()
    tasks = [asyncio.ensure_future(one(i)) for i in range(size)]
    await asyncio.sleep(0)  # every task has submitted its intent: all are pending now
    submit_s = time.monotonic() - begin
    peak_pending = dl.pending
    held = (rss_mib(os.getpid()) - rss_before) * 1024 * 1024  # tasks, waiters, queued intents
    reasons = await asyncio.gather(*tasks)
    return {"wall_s": time.monotonic() - begin, "latencies": latencies, "submit_s": submit_s,
            "peak_pending": peak_pending, "bytes_per_pending": held / max(size, 1),
            "ok": sum(r == "ok" for r in reasons)}


def main() -> None:
    args = argparse.ArgumentParser()
    args.add_argument("--pending", type=int, nargs="+", default=[1_000, 10_000])
    opts = args.parse_args()
    with bench_worker(DOUBLELOCK_SIGNING_KEYS=KEY) as live:
        with Lifecycle(live.settings) as lifecycle:
            subjects = [Subject(f"bp-{live.run}-{i}", "U", "192.0.2.1", "D") for i in range(500)]
            for s in subjects:
                lifecycle.created(s.session_id, s.user_id, ip=s.ip, device_id=s.device_id,
                                  wait=False)
            lifecycle.flush()
        with Doublelock("bench", live.settings, timeout_s=2 * MINUTE / 1000) as dl:
            dispatch_ns: list[int] = []
            behind_ms: list[int] = []  # decided → read by the SDK
            deliver = dl._deliver

            def timed_deliver(value: bytes | None) -> Any:
                started = time.perf_counter_ns()
                answer = deliver(value)
                dispatch_ns.append(time.perf_counter_ns() - started)
                if answer is not None:
                    behind_ms.append(time.time_ns() // 1_000_000 - answer[1].decided_at)
                return answer

            dl._deliver = timed_deliver  # type: ignore[method-assign]
            for size in [1, *opts.pending]:
                dispatch_ns.clear()
                behind_ms.clear()
                got = asyncio.run(wave(dl, subjects, size))
                lat = got["latencies"]
                micros = [n / 1000 for n in dispatch_ns] or [float("nan")]
                print(f"{size:>6,} pending: submitted in {got['submit_s'] * 1000:.0f} ms, "
                      f"all decided in {got['wall_s']:.2f} s "
                      f"({size / got['wall_s']:,.0f}/s, {got['ok']:,} allowed); latency "
                      f"p50 {percentile(lat, 0.5):.1f} ms, p99 {percentile(lat, 0.99):.1f} ms; "
                      f"SDK dispatch {sum(micros) / len(micros):.1f} µs/decision "
                      f"(p99 {percentile(micros, 0.99):.1f} µs); "
                      f"RSS +{got['bytes_per_pending'] / 1024:.1f} KiB per pending intent "
                      f"(peak {got['peak_pending']:,} pending); "
                      f"SDK refusals {dl.counts or 'none'}; decided → read by the SDK "
                      f"p50 {percentile(behind_ms or [-1], 0.5)} ms, "
                      f"p99 {percentile(behind_ms or [-1], 0.99)} ms")
    print_worker_summaries(live.log)


if __name__ == "__main__":
    main()
