"""Benchmark: the pure core and the codec, per decision. Prints figures; asserts nothing.

    python -m bench.decide_core [N]
"""

from __future__ import annotations

import sys
import time
import tracemalloc

from doublelock.events import MINUTE, Activity, Intent, SessionCreated
from doublelock.policy import load_policy
from doublelock.session import apply
from doublelock.verdict import decide
from schemas.codec import Codec

BASE = 1_775_548_800_000  # 2026-04-07T08:00:00Z


def main(n: int = 200_000) -> None:
    policy, codec = load_policy(), Codec()
    state = apply(None, SessionCreated("S", BASE, "U", BASE, 2, "192.0.2.1", "D"), policy)
    state = apply(state, Activity("S", BASE + MINUTE), policy)
    intents = [Intent(f"I{i}", "S", "U", ("report.view", "payments.transfer")[i % 2], "r",
                      BASE + 2 * MINUTE, "192.0.2.1", "D", "ui", "console") for i in range(1000)]
    payloads = [codec.encode(i) for i in intents]
    state_bytes = codec.encode(state)

    start = time.perf_counter()
    for k in range(n):
        decide(state, intents[k % 1000], policy, BASE + 2 * MINUTE)
    core = time.perf_counter() - start

    start = time.perf_counter()
    for k in range(n // 4):
        intent = codec.decode_intent(payloads[k % 1000])
        session = codec.decode(state_bytes)
        codec.encode(decide(session, intent, policy, BASE + 2 * MINUTE))
    full = (time.perf_counter() - start) / (n // 4)

    tracemalloc.start()
    for k in range(10_000):
        decide(state, intents[k % 1000], policy, BASE + 2 * MINUTE)
    _, peak = tracemalloc.get_traced_memory()
    print(f"core decide():                 {n / core:>10,.0f} decisions/s "
          f"({core / n * 1e6:.2f} µs each)")
    print(f"decode intent+state, decide, encode: {1 / full:>10,.0f} decisions/s "
          f"({full * 1e6:.1f} µs each)")
    print(f"peak traced memory over 10k decisions: {peak / 1024:.0f} KiB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
