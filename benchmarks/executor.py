"""Task start through the executor, and log latency, against the plain engine SDK.

1. Start: wall time of `Executor.start_task` (allow-list check, SQLite record,
   work dirs, create with the slot's limits and the lock-down, start) until the
   container runs, against `client.containers.run(image, cmd, detach=True)` of the
   same image through the same engine, as an SDK user would start it, with the
   slot's network mode (none), so both set up the same network. Each round starts
   one of each, and which goes first alternates (the engine's clean-up of the
   previous container must not fall on one side only); each container finishes
   and is cleaned up outside the timed part. Printed: the ratio of the medians,
   and the median of the rounds' ratios (load drift cancels within a round).
2. Log latency: a container prints a line every 100 ms stamped with the kernel's
   boot-time clock (/proc/uptime, 10 ms steps, the same clock inside and outside a
   container); the latency is the arrival time in the executor's log stream minus
   that stamp. The same container run followed with the SDK's own
   `logs(stream=True, follow=True)` is the baseline.
3. Log latency at the consumer, across libp2p (skip with --no-p2p): p2pnode.localnet's
   network (anvil, a hub and a consumer daemon over loopback), a deal on a slot, the
   same stamped container started through the consumer; each line goes container ->
   hub's executor -> /sonm/task/1 stream -> consumer daemon -> its local API's
   follow (`GET /tasks/{deal}/logs?follow=true`), where its arrival is stamped. The
   baseline is the SDK follow of item 2, run in the same process. The network takes
   about a minute to come up; only the lines are timed.

Needs an engine with localhost/busybox:latest (scripts/setup-engine). Prints
medians and ratios, each saying what it divides by.
Usage: python benchmarks/executor.py [--runs 10] [--lines 20] [--no-p2p]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import trio

from gossip.eip712 import SigningDomain
from p2pnode.executor import (
    DealTask,
    Engine,
    Executor,
    ExecutorSettings,
    SlotLimits,
    TaskSpec,
    engine_address,
)
from p2pnode.storage import Storage

IMAGE = "localhost/busybox:latest"
KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
LIMITS = SlotLimits(cpu_cores=0.5, ram_bytes=64 * 2**20)


def boottime() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def stamped_lines(n: int) -> list[str]:
    script = (
        f"i=0; while [ $i -lt {n} ]; do i=$((i+1)); "
        'read up _ < /proc/uptime; echo "$i $up"; sleep 0.1; done'
    )
    return ["sh", "-c", script]


def latencies_from(lines: list[tuple[float, bytes]]) -> list[float]:
    out = []
    for arrived, line in lines:
        parts = line.split()
        if len(parts) == 2:
            out.append(arrived - float(parts[1]))
    return out


def split_lines(arrived: float, data: bytes, pending: bytearray) -> list[tuple[float, bytes]]:
    pending.extend(data)
    got = []
    while b"\n" in pending:
        line, _, rest = bytes(pending).partition(b"\n")
        pending[:] = rest
        got.append((arrived, line))
    return got


def plain_start(engine: Engine) -> float:
    """One plain containers.run until it returns (the container runs); cleaned up after."""
    t0 = time.perf_counter()
    c = engine.client.containers.run(IMAGE, ["true"], detach=True, network_mode="none")
    elapsed = time.perf_counter() - t0
    c.wait()
    c.remove(force=True)
    return elapsed


def starts_and_latency(
    engine: Engine, runs: int, lines: int, base: Path
) -> tuple[list[float], list[float], list[float]]:
    """Executor starts and plain starts, alternating, then the executor's log latency."""
    storage = Storage.open_in(base)
    ex = Executor(
        storage,
        base,
        ExecutorSettings(allowed_images=(IMAGE,), stop_grace=1.0),
        signer_key=KEY,
        domain=SigningDomain(chain_id=31337),
        engine=engine,
    )
    starts: list[float] = []
    plain: list[float] = []
    lat: list[float] = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(ex.run)
            for i in range(runs):
                deal = DealTask(
                    1, f"start-{i}", TaskSpec(IMAGE, ("true",)), LIMITS, time.time() + 60
                )
                if i % 2:  # which side goes first alternates
                    plain.append(await trio.to_thread.run_sync(plain_start, engine))
                t0 = time.perf_counter()
                await ex.start_task(deal)
                starts.append(time.perf_counter() - t0)
                await ex.wait_task(deal.task_id)
                if not i % 2:
                    plain.append(await trio.to_thread.run_sync(plain_start, engine))
            deal = DealTask(2, "logs", TaskSpec(IMAGE, tuple(stamped_lines(lines))), LIMITS,
                            time.time() + 60)  # fmt: skip
            await ex.start_task(deal)
            pending = bytearray()
            async for chunk in ex.follow_logs("logs"):
                lat.extend(latencies_from(split_lines(boottime(), chunk.data, pending)))
            await ex.wait_task("logs")
            nursery.cancel_scope.cancel()

    trio.run(main)
    storage.close()
    return starts, plain, lat


def plain_latency(engine: Engine, lines: int) -> list[float]:
    client = engine.client
    c = client.containers.run(IMAGE, stamped_lines(lines), detach=True, network_mode="none")
    got: list[tuple[float, bytes]] = []
    pending = bytearray()

    def follow() -> None:
        for data in c.logs(stream=True, follow=True):
            got.extend(split_lines(boottime(), data, pending))

    t = threading.Thread(target=follow)
    t.start()
    c.wait()
    t.join(10)
    c.remove(force=True)
    return latencies_from(got)


def consumer_latency(lines: int, base: Path) -> list[float]:
    """Item 3: the stamped lines as the consumer daemon's API streams them."""
    import base64
    import json

    import httpx

    from p2pnode.api.auth import read_token
    from p2pnode.localnet import open_net

    price = 10**12  # wei per second
    hub = {"executor": {"allowed_images": [IMAGE]}}
    with open_net(base, ("con_a",), hub) as net:
        slot = {"slot_id": "b1", "cpu_cores": 1, "ram_bytes": 2**28, "duration": 3600,
                "price_per_hour": str(price * 3600)}  # fmt: skip
        added = net.call("supplier", "POST", "/slots", slot)
        if added.status_code != 201:
            raise SystemExit(f"the hub refused the slot: {added.text}")
        until = time.monotonic() + 60
        while not net.asks_seen("con_a"):
            if time.monotonic() > until:
                raise SystemExit("the consumer never saw the slot's ASK")
            time.sleep(0.5)
        net.bid("con_a", duration=600, price_per_hour=price * 3600)
        deal_id = None
        while deal_id is None:
            if time.monotonic() > until + 60:
                raise SystemExit("no deal was accepted")
            accepted = [d for d in net.deals("con_a") if d["status"] == "accepted"]
            deal_id = accepted[0]["deal_id"] if accepted else None
            time.sleep(0.3)
        start = {"image": IMAGE, "command": stamped_lines(lines)}
        started = net.call("con_a", "POST", f"/tasks/{deal_id}", start)
        if started.status_code != 201:
            raise SystemExit(f"the task did not start: {started.text}")
        node = net.nodes["con_a"]
        info, token = node.ready(), read_token(node.data_dir)
        assert info and token
        got: list[tuple[float, bytes]] = []
        pending = bytearray()
        with httpx.stream(
            "GET",
            f"{info['api_url']}/tasks/{deal_id}/logs",
            params={"follow": "true"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        ) as resp:
            for line in resp.iter_lines():
                record = json.loads(line)
                if record["stream"] == "stdout":
                    data = base64.b64decode(record["data"])
                    got.extend(split_lines(boottime(), data, pending))
    return latencies_from(got)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--lines", type=int, default=20)
    parser.add_argument("--no-p2p", action="store_true", help="skip item 3 (daemons, anvil)")
    args = parser.parse_args()
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average (1, 5, 15 min) at the start: {load}")
    engine = Engine.connect(engine_address())
    engine.image(IMAGE, pull=False)
    version = engine.version()
    print(f"engine: {version.get('Components', [{}])[0].get('Name', '?')} {version.get('Version')}"
          f" at {engine_address() or '(default)'}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        starts_and_latency(engine, 1, 1, Path(tmp) / "warm")  # image cache, first-run costs
        ex_starts, sdk_starts, ex_lat = starts_and_latency(
            engine, args.runs, args.lines, Path(tmp) / "run"
        )
    sdk_lat = plain_latency(engine, args.lines)
    ex_start, sdk_start = statistics.median(ex_starts), statistics.median(sdk_starts)
    print(f"task start, median of {args.runs}: executor {ex_start * 1000:.0f} ms, "
          f"plain containers.run {sdk_start * 1000:.0f} ms")  # fmt: skip
    print(f"  ratio executor / plain containers.run = {ex_start / sdk_start:.2f} (target <= 1.2)")
    paired = statistics.median(e / s for e, s in zip(ex_starts, sdk_starts, strict=True))
    print(f"  median of the rounds' ratios executor / plain containers.run = {paired:.2f}"
          " (each round runs both back to back, so load drift cancels)")  # fmt: skip
    ex_p50, sdk_p50 = statistics.median(ex_lat), statistics.median(sdk_lat)
    print(f"log line latency over {len(ex_lat)} lines: executor p50 {ex_p50 * 1000:.0f} ms, "
          f"p95 {pct(ex_lat, 0.95) * 1000:.0f} ms (target p50 < 500 ms); "
          f"plain SDK follow p50 {sdk_p50 * 1000:.0f} ms over {len(sdk_lat)} lines")  # fmt: skip
    print(f"  ratio executor p50 / plain SDK follow p50 = {ex_p50 / max(sdk_p50, 1e-3):.2f}")
    if args.no_p2p:
        return
    with tempfile.TemporaryDirectory() as tmp:
        p2p_lat = consumer_latency(args.lines, Path(tmp))
    if not p2p_lat:
        raise SystemExit("no stamped line reached the consumer")
    p2p_p50 = statistics.median(p2p_lat)
    print(f"log line latency at the consumer (container -> hub executor -> /sonm/task/1 -> "
          f"consumer API) over {len(p2p_lat)} lines: p50 {p2p_p50 * 1000:.0f} ms, "
          f"p95 {pct(p2p_lat, 0.95) * 1000:.0f} ms (target p50 < 500 ms); the first line, "
          f"written before the follow was opened, {p2p_lat[0] * 1000:.0f} ms")  # fmt: skip
    print(
        f"  ratio consumer p50 / plain SDK follow p50 = {p2p_p50 / max(sdk_p50, 1e-3):.2f}; "
        f"consumer p50 / in-process executor p50 = {p2p_p50 / max(ex_p50, 1e-3):.2f}"
    )
    print(f"load average (1, 5, 15 min) at the end: "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")  # fmt: skip


if __name__ == "__main__":
    main()
