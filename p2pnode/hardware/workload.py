"""The fixed CPU workload behind cpu-sysbench-single and cpu-sysbench-multi.

Shaped like sysbench's cpu test: one event finds the primes up to a fixed bound by
trial division, and the score is events per second. It runs in Python, so its
figures compare machines with each other, not with the sysbench binary's. Every
event's answer is checked, so a machine that computes wrong cannot post a score.

Kept free of heavy imports: each multi-core worker process imports this module.
"""

from __future__ import annotations

import sys
import time
from typing import Any

MAX_PRIME = 2000
EXPECTED_PRIMES = 302  # primes in 3..MAX_PRIME, the count sysbench's loop makes


class WorkloadError(RuntimeError):
    """An event computed the wrong answer: the CPU (or the interpreter) is faulty."""


def event(max_prime: int = MAX_PRIME) -> int:
    """One event: how many of 3..max_prime are prime (sysbench's trial division)."""
    found = 0
    for candidate in range(3, max_prime + 1):
        divisor = 2
        while divisor * divisor <= candidate:
            if candidate % divisor == 0:
                break
            divisor += 1
        else:
            found += 1
    return found


def run_for(seconds: float, on_event: Any = None) -> tuple[int, float]:
    """Run events until `seconds` have passed (at least one): (events, elapsed seconds)."""
    start = time.perf_counter()
    deadline = start + seconds
    events = 0
    while True:
        if event() != EXPECTED_PRIMES:
            raise WorkloadError(f"an event found a wrong prime count (expected {EXPECTED_PRIMES})")
        events += 1
        now = time.perf_counter()
        if on_event is not None:
            on_event(now - start)
        if now >= deadline:
            return events, now - start


def child_main() -> None:
    """One process of the multi-core run (`python -c ...child_main()` SECONDS).

    Says "ready" once imported, waits for a line on stdin so that every process
    starts together, runs, and prints "EVENTS ELAPSED".
    """
    seconds = float(sys.argv[1])
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit(3)  # the parent went away
    events, elapsed = run_for(seconds)
    print(f"{events} {elapsed!r}", flush=True)
