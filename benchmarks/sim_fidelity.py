"""Simulator fidelity: the same 10-node graph and load as real daemons and simulated.

Real side: 10 daemons' gossip drivers (`p2pnode.pubsub.PubSub`, Noise + Yamux
over loopback TCP, in one process, one trio loop: as benchmarks/gossip_throughput.py
runs them) on a random connected graph (degree 4, D=6), ~256-byte signed orders
published open-loop at a fixed rate, publishers round robin. Simulated side:
the same graph, gossip parameters, publish schedule and payload size in
`simulations.World` with the CPU model (simulations/cpu.py): one shared CPU, as
the ten real routers share one thread, and the driver's write coalescing (the
fixed hold or the adaptive one, whichever this checkout's driver has).

Calibration (from the real daemons' own counters, never from latencies):
- a heartbeat's CPU: the process CPU of an idle phase / heartbeats run;
- a write's and a read's CPU: the process CPU of the calibration rate's phase,
  less the idle rate, over the writes the drivers counted (each write is one
  read at the other end; split evenly between the two), and per message in a
  write when two calibration rates let the fixed and per-message parts be
  separated;
- the OS's wake-up delay: how long this process takes to run when a socket it
  sleeps on turns readable, sampled in the same process (a thread writes a
  byte, the trio loop records its arrival); the simulated CPU draws one each
  time work finds it idle (`--no-wake` leaves it out, to show what it adds);
- the share of a core the process gets when it wants a whole one (a busy loop's
  CPU over wall seconds, same process): the CPU costs above are CPU seconds,
  and take 1/share as long in wall time (`--no-share`: taken as they are);
- the cyclic garbage collector's pauses: every collection of the idle and
  measured phases is timed (`gc.callbacks`); their CPU comes off the costs
  above (their wall time, which is their CPU on a core the process has to
  itself), and the simulated CPU stops for one of these pauses, drawn at random,
  after each stretch of work as long as the real process did between two
  collections (`--no-gc` leaves them out, to show what they add). A whole-heap
  pause of tens of milliseconds would hold every delivery of the message it
  falls on. The real process freezes what its set-up built once the ten
  drivers are up, as `sonm-p2p run` does once its daemon is ready
  (p2pnode/heap.py), so a collection walks what the run makes, not the
  imports;
- the loopback link: `--link-ms` (one-way, default 0.05 ms).

Printed per rate: real p50/p99, simulated p50/p99, and simulated / real for
each (the target is within 25 %, i.e. a ratio in [0.75, 1.25]). Latency is
publish to first delivery at each of the 9 other nodes, counted on both sides
from the publish call (the simulator's is at the due time; the real one's when
its publisher woke), not from the due time as gossip_throughput counts: at these
unsaturated rates the real publisher's lateness in waking is the harness's, not
the gossip's, and the simulator has no such lateness to model.

The real side is wall-clock: run it when the machine has CPU to spare (the
load average is printed; a loaded machine delays the daemons' wake-ups, which
the model does not include).

    .venv/bin/python -m benchmarks.sim_fidelity [--rates 10,20] [--seconds 6]
        [--min-messages 200] [--no-gc]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import hashlib
import logging
import os
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import trio

from benchmarks.gossip_throughput import N, _settle, connect_all, hosts_on_graph, make_orders
from benchmarks.gossip_throughput import random_graph as throughput_graph
from gossip.events import Delivered
from gossip.params import GossipSubParams
from gossip.topics import ORDERS_TOPIC
from p2pnode.heap import freeze_startup_heap
from p2pnode.pubsub import PubSub
from simulations.cpu import CpuParams
from simulations.engine import EngineParams, Simulator
from simulations.latency import LatencyParams
from simulations.network import NetworkParams
from simulations.results import percentile
from simulations.topology import TopologyParams
from simulations.world import World, WorldParams, payload

TOPIC = ORDERS_TOPIC
PARAMS = GossipSubParams(D=6, D_lo=5, D_hi=12, heartbeat_interval=1.0)
WARMUP_S = 3.0


@dataclass
class Phase:
    rate: float
    published: int = 0
    latencies: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    wall_s: float = 0.0
    writes: int = 0
    msgs_written: int = 0
    heartbeats: int = 0
    gc_pauses: list[float] = field(default_factory=list)  # wall seconds, each collection

    @property
    def gc_s(self) -> float:
        """Seconds the collector stopped the process in this phase (wall time)."""
        return sum(self.gc_pauses)

    def pct(self, q: float) -> float:
        return percentile(sorted(self.latencies), q)


@dataclass
class Driver:
    """What the checkout's driver does with writes (read off PubSub itself)."""

    coalescing: str
    hold_s: float
    flush_at: int
    max_write_messages: int
    max_write_bytes: int


def driver_of(ps: PubSub) -> Driver:
    hold = getattr(ps, "coalesce_delay", None)
    p = ps.router.params
    return Driver(
        coalescing="hold" if hold else "adaptive",
        hold_s=float(hold or 0.0),
        flush_at=int(getattr(ps, "flush_at", 64)),
        max_write_messages=int(getattr(p, "max_write_messages", 512)),
        max_write_bytes=int(getattr(p, "max_write_bytes", 256 << 10)),
    )


class GcPauses:
    """Every collection of the process while installed: (start, seconds), perf_counter."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, float]] = []
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        """gc.callbacks' hook: called with "start" and "stop" around each collection."""
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((self._started, time.perf_counter() - self._started))

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def between(self, t0: float, t1: float) -> list[float]:
        return [d for s, d in self.pauses if t0 <= s < t1]


def counters(nodes: list[PubSub]) -> tuple[int, int, int]:
    writes = sum(ps.metrics.writes for ps in nodes)
    msgs = sum(ps.router.metrics.msgs_received for ps in nodes)
    hbs = sum(ps.router.metrics.heartbeats for ps in nodes)
    return writes, msgs, hbs


def phase_messages(rate: float, seconds: float, min_messages: int) -> int:
    """Messages a phase publishes: `seconds` of the rate, and at least
    `min_messages`. A p99 over (message, receiver) pairs moves with the worst few
    messages (9 pairs each): 60 messages at 10 msg/s put it on the worst one."""
    return max(int(seconds * rate), min_messages)


async def real_run(
    edges: set[tuple[int, int]],
    payloads: list[bytes],
    rates: list[float],
    seconds: float,
    min_messages: int,
) -> tuple[Phase, list[Phase], Driver, list[float], float]:
    with GcPauses() as collections:
        return await _real_run(edges, payloads, rates, seconds, min_messages, collections)


async def _real_run(
    edges: set[tuple[int, int]],
    payloads: list[bytes],
    rates: list[float],
    seconds: float,
    min_messages: int,
    collections: GcPauses,
) -> tuple[Phase, list[Phase], Driver, list[float], float]:
    sent_at: dict[bytes, tuple[int, float]] = {}
    latencies: list[float] = []
    async with (
        hosts_on_graph(edges, daemon=True) as hosts,
        trio.open_nursery() as nursery,
    ):
        nodes: list[PubSub] = []
        for k, h in enumerate(hosts):

            def on_delivery(d: Delivered, k: int = k) -> None:
                pub = sent_at.get(d.msg_id)
                if pub is not None and pub[0] != k:
                    latencies.append(trio.current_time() - pub[1])

            ps = PubSub(h, params=PARAMS, on_delivery=on_delivery, seed=k)
            await nursery.start(ps.run)
            ps.subscribe(TOPIC)
            nodes.append(ps)
        await connect_all(hosts, edges)
        await _settle(lambda i: len(nodes[i].router.topic_peers(TOPIC)), edges)
        # as `sonm-p2p run` does once its daemon is ready: what the set-up built
        # leaves the collector's walks (p2pnode/heap.py; this process then only
        # simulates and exits)
        freeze_startup_heap()

        idle = Phase(rate=0.0)
        w0, _, h0 = counters(nodes)
        c0, t0 = time.process_time(), time.perf_counter()
        await trio.sleep(seconds)
        w1, _, h1 = counters(nodes)
        idle.cpu_s, idle.wall_s = time.process_time() - c0, time.perf_counter() - t0
        idle.writes, idle.heartbeats = w1 - w0, h1 - h0
        idle.gc_pauses = collections.between(t0, t0 + idle.wall_s)
        wakes = await wake_delays(seconds)
        share = cpu_share()

        phases = []
        it = iter(payloads)
        for rate in rates:
            ph = Phase(rate=rate)
            latencies.clear()
            w0, m0, h0 = counters(nodes)
            c0, t0 = time.process_time(), time.perf_counter()
            start = trio.current_time()
            count = phase_messages(rate, seconds, min_messages)
            for i in range(count):
                await trio.sleep_until(start + i / rate)
                data = next(it)
                sent_at[hashlib.sha256(data).digest()] = (i % N, trio.current_time())
                await nodes[i % N].publish(TOPIC, data)
            await trio.sleep(1.0)  # let the last ones land
            w1, m1, h1 = counters(nodes)
            ph.cpu_s, ph.wall_s = time.process_time() - c0, time.perf_counter() - t0
            ph.writes, ph.msgs_written, ph.heartbeats = w1 - w0, m1 - m0, h1 - h0
            ph.published = count
            ph.latencies = list(latencies)
            ph.gc_pauses = collections.between(t0, t0 + ph.wall_s)
            phases.append(ph)
        driver = driver_of(nodes[0])
        nursery.cancel_scope.cancel()
    return idle, phases, driver, wakes, share


def cpu_share(wall_s: float = 0.5) -> float:
    """The share of one core this process gets when it wants all of it: CPU
    seconds over wall seconds of a busy loop (1.0 on an idle machine)."""
    c0, t0 = time.process_time(), time.perf_counter()
    while time.perf_counter() - t0 < wall_s:
        sum(range(1000))
    return min(1.0, (time.process_time() - c0) / (time.perf_counter() - t0))


async def wake_delays(seconds: float) -> list[float]:
    """How long the OS takes to run this process when a socket it waits on turns
    readable: a thread writes a byte at a known time, the trio loop (otherwise
    idle but for the daemons' heartbeats) records when it got it."""
    a, b = socket.socketpair()
    a.setblocking(False)
    stamps: list[float] = []
    out: list[float] = []
    stop = threading.Event()

    def poke() -> None:
        rng = random.Random(7)
        while not stop.wait(rng.uniform(0.005, 0.02)):
            stamps.append(time.perf_counter())
            b.send(b"x")

    th = threading.Thread(target=poke, daemon=True)
    th.start()
    sock = trio.socket.from_stdlib_socket(a)
    with trio.move_on_after(seconds):
        while True:
            got = await sock.recv(64)
            now = time.perf_counter()
            for _ in got:
                if len(out) < len(stamps):
                    out.append(now - stamps[len(out)])
    stop.set()
    th.join()
    a.close()
    b.close()
    return out


def calibrate(
    idle: Phase, phases: list[Phase], driver: Driver, wakes: list[float], share: float
) -> tuple[CpuParams, str]:
    """CPU costs from the real run's CPU seconds and counters (see the module doc)."""
    # the collector's pauses are modelled on their own (below): out of the costs
    hb = max(idle.cpu_s - idle.gc_s, 0.0) / max(idle.heartbeats, 1)
    idle_rate = max(idle.cpu_s - idle.gc_s, 0.0) / idle.wall_s

    def busy(p: Phase) -> float:
        return max(p.cpu_s - p.gc_s - idle_rate * p.wall_s, 0.0)

    a = phases[0]
    per_write = busy(a) / max(a.writes, 1)
    per_msg = 0.0
    how = f"{per_write * 1e3:.3f} ms per write+read from the {a.rate:g} msg/s phase"
    if len(phases) > 1:
        b = phases[-1]
        # busy = x * writes + y * messages, two phases, two unknowns
        det = a.writes * b.msgs_written - b.writes * a.msgs_written
        if det:
            x = (busy(a) * b.msgs_written - busy(b) * a.msgs_written) / det
            y = (a.writes * busy(b) - b.writes * busy(a)) / det
            if x > 0 and y >= 0:
                per_write, per_msg = x, y
                how = (
                    f"{x * 1e3:.3f} ms per write+read and {y * 1e3:.3f} ms per message "
                    f"from the {a.rate:g} and {b.rate:g} msg/s phases"
                )
    # CPU seconds become wall seconds at the share of a core the process gets
    per_write, per_msg, hb = per_write / share, per_msg / share, hb / share
    how += f"; share of a core {share:.0%} (costs divided by it)"
    # the collector: its pauses as timed, one after each stretch of work (CPU
    # seconds less the pauses, as wall seconds at the share) as long as the real
    # process did between two collections in the idle and measured phases
    runs = [idle, *phases]
    pauses = [d for p in runs for d in p.gc_pauses]
    work = sum(max(p.cpu_s - p.gc_s, 0.0) for p in runs) / share
    gc_every = work / len(pauses) if pauses else 0.0
    if pauses:
        g = sorted(pauses)
        how += (
            f"; collector: {len(g)} pauses, one per {gc_every * 1e3:.1f} ms of work, "
            f"p50/p99/max {percentile(g, 50) * 1e3:.2f}/{percentile(g, 99) * 1e3:.2f}/"
            f"{g[-1] * 1e3:.2f} ms"
        )
    cpu = CpuParams(
        read_s=per_write / 2,
        write_s=per_write / 2,
        message_s=per_msg / 2,
        write_message_s=per_msg / 2,
        heartbeat_s=hb,
        coalescing=driver.coalescing,
        hold_s=driver.hold_s,
        flush_at=driver.flush_at,
        max_write_messages=driver.max_write_messages,
        max_write_bytes=driver.max_write_bytes,
        shared=True,
        wake_s=tuple(wakes),
        gc_every_s=gc_every,
        gc_pause_s=tuple(pauses),
    )
    w = sorted(wakes)
    wake = (
        f"; wake-up delay p50/p99 {percentile(w, 50) * 1e3:.2f}/{percentile(w, 99) * 1e3:.2f} ms "
        f"({len(w)} samples)"
        if w
        else ""
    )
    return cpu, how + f"; heartbeat {hb * share * 1e3:.3f} ms" + wake


def sim_run(
    edges: set[tuple[int, int]],
    size: int,
    rate: float,
    seconds: float,
    cpu: CpuParams,
    link_s: float,
    seed: int,
    min_messages: int = 0,
) -> Phase:
    sim = Simulator(EngineParams(seed=seed))
    net = NetworkParams(
        topology=TopologyParams(kind="line"),
        latency=LatencyParams(model="fixed", fixed_s=link_s),
        uplink_bps=None,
    )
    world = World(sim, WorldParams(nodes=N, network=net, gossip=PARAMS, cpu=cpu))
    for s in world.net.adj:  # the real run's graph instead of the line
        s.clear()
    for a, b in sorted(edges):
        world.net.connect(a, b)
    world.start_all([TOPIC])
    sim.run(until=WARMUP_S)
    assert world.shared_cpu is not None
    busy0 = world.shared_cpu.busy_s
    count = phase_messages(rate, seconds, min_messages)
    seconds = count / rate
    ids: list[tuple[bytes, int]] = []

    def pub(i: int) -> None:
        ids.append((world.publish(i % N, TOPIC, payload(sim.rng, size)), i % N))

    for i in range(count):
        sim.schedule(WARMUP_S + i / rate, pub, i)
    sim.run(until=WARMUP_S + seconds + 1.0)
    ph = Phase(rate=rate, published=count)
    ph.cpu_s, ph.wall_s = world.shared_cpu.busy_s - busy0, seconds + 1.0
    for mid, src in ids:
        t0 = world.recorder.published[mid][1]
        ph.latencies += [t - t0 for k, t in world.recorder.first[mid].items() if k != src]
    return ph


def main() -> None:
    logging.disable(logging.WARNING)
    os.environ.setdefault("PY_YAMUX_RELEASE_ON_READ", "0")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="10,20", help="msg/s, comma separated")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument(
        "--min-messages",
        type=int,
        default=200,
        help="each phase publishes at least this many (a p99 needs them; see phase_messages)",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--link-ms", type=float, default=0.05, help="loopback one-way latency")
    ap.add_argument(
        "--no-wake", action="store_true", help="simulate without the measured wake-up delays"
    )
    ap.add_argument(
        "--no-share", action="store_true", help="take the CPU costs as wall time (idle machine)"
    )
    ap.add_argument(
        "--no-gc", action="store_true", help="simulate without the collector's measured pauses"
    )
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    edges = throughput_graph(N, 4, random.Random(args.seed))
    payloads = make_orders(
        sum(phase_messages(r, args.seconds, args.min_messages) for r in rates) + 10
    )
    load0 = os.getloadavg()[0]
    idle, phases, driver, wakes, share = trio.run(
        real_run, edges, payloads, rates, args.seconds, args.min_messages
    )
    load1 = os.getloadavg()[0]
    share_used = 1.0 if args.no_share else share
    cpu, how = calibrate(idle, phases, driver, wakes, share_used)
    if args.no_wake:
        cpu = dataclasses.replace(cpu, wake_s=())
    if args.no_gc:
        cpu = dataclasses.replace(cpu, gc_every_s=0.0, gc_pause_s=())
    print(
        f"10 nodes, degree 4, D=6, {len(payloads[0])}-byte orders; driver: {driver.coalescing}"
        + (
            f" (hold {driver.hold_s * 1e3:.0f} ms, flush at {driver.flush_at})"
            if driver.hold_s
            else ""
        )
        + f"; load average {load0:.1f} -> {load1:.1f} on {os.cpu_count()} cores"
    )
    print(f"calibrated from the real daemons: {how}")
    print(
        f"{'rate':>6}{'real p50':>10}{'sim p50':>9}{'sim/real':>9}"
        f"{'real p99':>10}{'sim p99':>9}{'sim/real':>9}{'real busy':>10}{'sim busy':>9}"
    )
    for ph in phases:
        s = sim_run(
            edges,
            len(payloads[0]),
            ph.rate,
            args.seconds,
            cpu,
            args.link_ms / 1e3,
            1,
            args.min_messages,
        )
        r50, r99, s50, s99 = ph.pct(50), ph.pct(99), s.pct(50), s.pct(99)
        print(
            f"{ph.rate:>6g}{r50 * 1e3:>9.2f} {s50 * 1e3:>8.2f} {s50 / r50:>8.2f}"
            f"{r99 * 1e3:>9.2f} {s99 * 1e3:>8.2f} {s99 / r99:>8.2f}"
            f"{ph.cpu_s / ph.wall_s / share_used:>9.0%} {s.cpu_s / s.wall_s:>8.0%}"
        )
    print(
        "sim/real divides the simulated percentile by the real one, same graph, rate and "
        "schedule (target: 0.75-1.25); busy: the CPU's share of the wall time it could "
        "have had (real: CPU seconds / wall / share of a core)"
    )


if __name__ == "__main__":
    main()
