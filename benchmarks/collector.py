"""What one full cyclic collection stops a ready daemon for, with its start-up heap
walked (how a daemon ran before) and frozen (`sonm-p2p run` since:
p2pnode/heap.py), in the same process.

A collection of the oldest generation walks every tracked object, and while it
runs the node's event loop and its API thread (the interpreter lock) stand still.
Once a daemon is ready most of its heap is what its imports and start-up built.
This starts one daemon (seed role, its defaults, a temporary data dir), waits
for it to be ready, and times `gc.collect()` `--rounds` times before freezing
and after; printed: the objects each full collection walks and its median and
max pause, each side. After the freeze a collection walks only what the node
made since start-up, which in a node that has run for a while is its live
state (peers, orders, caches): nothing here, so no ratio is printed, the
after side being near zero by construction.

    python -m benchmarks.collector [--rounds 7]
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import trio

from p2pnode.config import build_config
from p2pnode.daemon import Daemon
from p2pnode.heap import freeze_startup_heap


def full_collections(rounds: int) -> list[float]:
    """Seconds of each of `rounds` full collections, back to back."""
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        gc.collect()
        out.append(time.perf_counter() - t)
    return out


async def measure(rounds: int) -> tuple[int, list[float], int, int, list[float]]:
    """The objects tracked and the full collections' seconds, before and after the freeze."""
    with tempfile.TemporaryDirectory(prefix="sonm-collector-") as tmp:
        return await _measure(rounds, Path(tmp))


async def _measure(rounds: int, base: Path) -> tuple[int, list[float], int, int, list[float]]:
    cfg = build_config(
        [
            {
                "node.data_dir": str(base / "node"),
                "node.role": "seed",
                "network.listen_port": 0,
                "api.port": 0,
            }
        ]
    )
    daemon = Daemon(cfg)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        await trio.sleep(1.0)  # let the start-up's stragglers (discovery, timers) run
        tracked = len(gc.get_objects())
        before = full_collections(rounds)
        frozen = freeze_startup_heap()
        left = len(gc.get_objects())
        after = full_collections(rounds)
        daemon.request_stop()
    return tracked, before, frozen, left, after


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    logging.disable(logging.WARNING)
    tracked, before, frozen, left, after = trio.run(measure, a.rounds)
    b, f = statistics.median(before), statistics.median(after)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    print(
        f"start-up heap walked: a full collection walks {tracked} objects, "
        f"median {b * 1e3:.2f} ms, max {max(before) * 1e3:.2f} ms"
    )
    print(
        f"start-up heap frozen ({frozen} objects): a full collection walks {left}, "
        f"median {f * 1e3:.3f} ms, max {max(after) * 1e3:.3f} ms"
    )


if __name__ == "__main__":
    main()
