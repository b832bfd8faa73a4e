"""Gossip capacity and latency: our router vs py-libp2p's bundled gossipsub, fairly.

10 py-libp2p hosts in one process over loopback TCP (Noise + Yamux), one random
connected graph, D=6, distinct ~256-byte signed orders, publishers round robin
over the nodes. Both routers are set up the way their users run them, on the
same footing:

- Each runs on its own product's host: ours on the daemon's (p2pnode/host.py:
  Yamux giving receive credit back by half windows, TCP reads ahead),
  py-libp2p's on its stock host (its Yamux, its TCP), both with
  PY_YAMUX_RELEASE_ON_READ=0, which halves py-libp2p's window updates.
  `--ours-on-stock-host` runs ours on the stock host too: the difference is
  what the daemon's host brings.
- py-libp2p is offered `/meshsub/1.1.0` only. Its 1.2 sends an IDONTWANT to
  every mesh peer for every message; ours (like go-libp2p) only for messages
  over 1 KiB, so on 1.2 it would carry control traffic ours does not. With
  ~256-byte messages neither router sends any IDONTWANT here.
- Only deliveries to the 9 *other* nodes count, for both (a publisher's own
  copy is not a delivery).
- py-libp2p drops an RPC when a peer's 32-slot outbound queue is full, and a
  message when a subscription's 32-slot channel is full. Both are counted; a
  py-libp2p phase with any drop is printed INVALID (it was run past its limits
  and its figures would compare against lost messages).
- Application validation and libp2p message signing are off for both
  (StrictNoSign for ours, strict_signing off for theirs): the routers and the
  transport are what is compared; gossip_cpu.py sets the cost beside a
  signature check.

Phases, one network per router, run one after another in the same process:

(a) saturated: a closed loop keeps `window` messages in flight (a message
    leaves flight when all 9 other nodes have it): whenever there is room, it
    starts that many publishes at once, each in a task of its own, as that
    many independent publishers would. Its capacity is messages/s delivered
    to all 9, with the process CPU share printed next to it (near 100% of one
    core means the router is CPU bound, not round-trip bound). Each router is
    run at each of its windows and keeps its best one that lost and dropped
    nothing: ours at 256, 1024 and 2048 (`--window`), py-libp2p at 8, 16, 32
    and 64 (`--window-theirs`; its outbound queues hold 32 RPCs per peer).
    (A single publisher awaiting each publish in turn measures the scheduler
    instead: it starts one message per pass of trio's run queue, whatever
    the window, so neither router was ever offered more than that.)
(b) open loop at fixed rates (10, 20, 40, 100, 400 msg/s): p50/p99 of
    publish-to-delivery latency over every (message, receiving node) pair,
    counted from when each message was due (a process too busy to publish on
    time delays its messages, and that is latency too), and
    process CPU per published message (the whole 10-node network's CPU / the
    messages published). Rates above 90% of py-libp2p's measured capacity (and
    above 40 msg/s) are not offered to it: they would only measure its queueing
    and drops.

Every ratio printed says what it divides by.

    .venv/bin/python -m benchmarks.gossip_throughput [--quick] [--seconds 8]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

# go-yamux's window-update rule (update after half the window is read, not after
# every read) halves the frames on the wire for both systems; set before import.
os.environ.setdefault("PY_YAMUX_RELEASE_ON_READ", "0")

import coincurve
import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import IHost
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.peerinfo import info_from_p2p_addr

from gossip import codec, eip712
from gossip.eip712 import SigningDomain
from gossip.events import Delivered
from gossip.orders import Order, Side
from gossip.params import GossipSubParams
from p2pnode.host import build_host, muxer_options, security_options
from p2pnode.metrics import NodeMetrics
from p2pnode.pubsub import PubSub

TOPIC = "/sonm/orders/1"
N = 10
LOOPBACK = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")
DOMAIN = SigningDomain(chain_id=31337)


def make_orders(count: int, seed: int = 1) -> list[bytes]:
    """Distinct signed orders of about 256 bytes each (nonce and price vary; each
    is validated once as built and signed with libsecp256k1, one key object for
    all: a few thousand a second, so preparing a run's orders stays short)."""
    key = hashlib.sha256(b"bench%d" % seed).digest()
    signer = coincurve.PrivateKey(key)
    author = eip712.address_of_key(key)
    now = int(time.time())
    base = Order.create(
        author=author,
        side=Side.ASK,
        price_per_hour=10**16,
        duration=3600,
        nonce=0,
        valid_from=now - 10,
        valid_until=now + 3600,
        cpu_cores=16,
        ram_bytes=64 << 30,
        storage_bytes=1 << 40,
        gpu_count=2,
        gpu_mem_bytes=24 << 30,
        net_in_bps=10**9,
        net_out_bps=10**9,
        properties={
            "region": "eu-central",
            "cpu": "epyc-7443",
            "os": "ubuntu-22.04-lts-server",
        },
        geo="DE",
    )
    out = []
    for n in range(1, count + 1):
        o = dataclasses.replace(base, nonce=n, price_per_hour=10**16 + n)
        sig = signer.sign_recoverable(o.digest(DOMAIN), hasher=None)
        out.append(codec.encode(dataclasses.replace(o, signature=sig[:64] + bytes([sig[64] + 27]))))
    return out


def random_graph(n: int, degree: int, rng: random.Random) -> set[tuple[int, int]]:
    edges = {(i, (i + 1) % n) for i in range(n)}
    target = n * degree // 2
    while len(edges) < target:
        a, b = rng.sample(range(n), 2)
        if (a, b) not in edges and (b, a) not in edges:
            edges.add((a, b))
    return edges


def new_noise_yamux_host() -> IHost:
    """A host as py-libp2p's users build one: Noise, its stock Yamux, its TCP."""
    kp = create_new_key_pair()
    return new_host(
        key_pair=kp,
        sec_opt=security_options(kp),
        muxer_opt=muxer_options(),
        listen_addrs=[LOOPBACK],
    )


def daemon_host() -> IHost:
    """A host as the daemon builds it (p2pnode/host.py): Noise, Yamux giving credit
    back by half windows, TCP reading ahead."""
    kp = create_new_key_pair()
    return build_host(kp, LOOPBACK, NodeMetrics())


# --ours-on-stock-host: ours on py-libp2p's host as it comes (what the daemon's host
# changes bring is the difference)
STOCK_HOST_FOR_OURS = False

RATES = (10.0, 20.0, 40.0, 100.0, 400.0)
FLOOR_RATE = 40.0  # rates up to this are offered to py-libp2p whatever its capacity


@dataclass
class Phase:
    """One measurement: a saturated run (offered None) or an open-loop rate."""

    name: str
    offered: float | None
    published: int = 0
    complete: int = 0  # delivered to all 9 other nodes
    seconds: float = 0.0  # first publish to last completion
    wall: float = 0.0  # first publish to the end of the drain
    latencies: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    drops: int = 0
    publish_seconds: float = 0.0  # first to last publish (open loop)
    notes: str = ""
    window: int = 0  # messages kept in flight (saturated phases)
    ran_out: bool = False  # a saturated phase published every message prepared for it

    @property
    def achieved(self) -> float:
        """The rate the open loop really published at (a starved process falls behind)."""
        return self.published / self.publish_seconds if self.publish_seconds else 0.0

    @property
    def rate(self) -> float:
        return self.complete / self.seconds if self.seconds else 0.0

    @property
    def cpu_share(self) -> float:
        return self.cpu_seconds / self.wall if self.wall else 0.0

    @property
    def per_cpu_second(self) -> float:
        """Messages delivered to all 9 per second of process CPU: the capacity the
        router would have on a whole core of its own (robust to a shared machine)."""
        return self.complete / self.cpu_seconds if self.cpu_seconds else 0.0

    @property
    def cpu_per_msg_ms(self) -> float:
        return self.cpu_seconds / max(self.published, 1) * 1e3

    @property
    def lost(self) -> int:
        return self.published - self.complete

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(q * len(xs)))] * 1e3


class Tracker:
    """Who has which message, when; which messages are still in flight."""

    def __init__(self, receivers: int) -> None:
        self.receivers = receivers
        self.sent_at: dict[bytes, float] = {}
        self.origin: dict[bytes, int] = {}
        self.count: dict[bytes, int] = {}
        self.latencies: list[float] = []
        self.complete = 0
        self.last_complete = 0.0
        self.room = trio.Event()
        self.in_flight = 0

    def published(self, key: bytes, node: int, at: float | None = None) -> None:
        """`node` publishes `key`; its latencies count from `at` (default: now)."""
        self.sent_at[key] = trio.current_time() if at is None else at
        self.origin[key] = node
        self.count[key] = 0
        self.in_flight += 1

    def got(self, key: bytes, node: int) -> None:
        """`node` delivered `key` to its application; the publisher's own copy is no
        delivery and is not counted."""
        t0 = self.sent_at.get(key)
        if t0 is None or self.origin[key] == node:
            return
        now = trio.current_time()
        self.latencies.append(now - t0)
        c = self.count[key] + 1
        self.count[key] = c
        if c == self.receivers:
            self.complete += 1
            self.last_complete = now
            self.in_flight -= 1
            self.room.set()


class Net:
    """A running 10-node network of one router: publish, and who delivered what."""

    name = ""

    def __init__(self) -> None:
        self.tracker = Tracker(N - 1)
        self.used = 0  # payloads already published: each phase takes fresh ones

    def take(self, payloads: list[bytes], count: int) -> list[bytes]:
        out = payloads[self.used : self.used + count]
        self.used += len(out)
        return out

    async def publish(self, node: int, data: bytes) -> None:
        raise NotImplementedError

    def drops(self) -> int:
        return 0

    def notes(self) -> str:
        return ""


async def _drain(tracker: Tracker, seconds: float) -> None:
    with trio.move_on_after(seconds):
        while tracker.in_flight:
            tracker.room = trio.Event()
            await tracker.room.wait()


async def saturated(net: Net, payloads: list[bytes], seconds: float, window: int) -> Phase:
    phase = Phase(net.name, None)
    # what this phase does not publish stays for the phases after it
    payloads = payloads[net.used : len(payloads) - int(seconds * sum(RATES)) - 100]
    tracker = net.tracker = Tracker(N - 1)
    drops0 = net.drops()
    start = trio.current_time()
    cpu0 = time.process_time()
    i = 0
    with trio.move_on_after(seconds):
        while i < len(payloads):
            while tracker.in_flight >= window:
                tracker.room = trio.Event()
                await tracker.room.wait()
            # fill the window: one task per publish, all started in this turn
            async with trio.open_nursery() as publishers:
                for _ in range(min(window - tracker.in_flight, len(payloads) - i)):
                    data = payloads[i]
                    tracker.published(hashlib.sha256(data).digest(), i % N)
                    publishers.start_soon(net.publish, i % N, data)
                    i += 1
    net.used += i
    phase.ran_out = i >= len(payloads)
    await _drain(tracker, 2.0)
    _close(phase, tracker, len(tracker.sent_at), start, cpu0, net.drops() - drops0)
    return phase


async def open_loop(net: Net, payloads: list[bytes], seconds: float, rate: float) -> Phase:
    phase = Phase(net.name, rate)
    tracker = net.tracker = Tracker(N - 1)
    drops0 = net.drops()
    payloads = net.take(payloads, max(1, int(seconds * rate)))
    count = len(payloads)
    start = trio.current_time()
    cpu0 = time.process_time()
    # Open loop: each message is published when due, whatever the network is
    # doing. A publisher that awaited each publish in turn got one per pass of
    # trio's run queue once the process was busy, and offered the network that
    # instead of the rate; so each publish runs in a task of its own, and those
    # that fell due while the process was busy start together.
    async with trio.open_nursery() as publishers:
        for i in range(count):
            due = start + i / rate
            if trio.current_time() < due:
                await trio.sleep_until(due)
            data = payloads[i]
            # from when it was due, not from when the publisher got to it: a process
            # too busy to publish on time delays the message, and that counts
            tracker.published(hashlib.sha256(data).digest(), i % N, at=due)
            publishers.start_soon(net.publish, i % N, data)
    phase.publish_seconds = (trio.current_time() - start) * count / max(count - 1, 1)
    await _drain(tracker, 2.0)
    _close(phase, tracker, count, start, cpu0, net.drops() - drops0)
    return phase


def _close(
    phase: Phase, tracker: Tracker, published: int, start: float, cpu0: float, drops: int
) -> None:
    phase.cpu_seconds = time.process_time() - cpu0
    phase.wall = trio.current_time() - start
    phase.published = published
    phase.complete = tracker.complete
    phase.seconds = max(tracker.last_complete - start, 1e-9)
    phase.latencies = tracker.latencies
    phase.drops = drops


@asynccontextmanager
async def hosts_on_graph(
    edges: set[tuple[int, int]], daemon: bool = False
) -> AsyncIterator[list[IHost]]:
    async with AsyncExitStack() as stack:
        hosts = [daemon_host() if daemon else new_noise_yamux_host() for _ in range(N)]
        for h in hosts:
            await stack.enter_async_context(h.run([LOOPBACK]))
        yield hosts


async def connect_all(hosts: list[IHost], edges: set[tuple[int, int]]) -> None:
    for a, b in sorted(edges):
        await hosts[a].connect(info_from_p2p_addr(hosts[b].get_addrs()[0]))


class OursNet(Net):
    name = "ours"

    def __init__(self, nodes: list[PubSub]) -> None:
        super().__init__()
        self.nodes = nodes

    async def publish(self, node: int, data: bytes) -> None:
        await self.nodes[node].publish(TOPIC, data)

    def drops(self) -> int:
        # forwarded messages a slow peer's bounded queue refused (ours never drops
        # its own publishes)
        return sum(ps.router.metrics.queue_overflow for ps in self.nodes)

    def notes(self) -> str:
        writes = sum(ps.metrics.writes for ps in self.nodes)
        rpcs = sum(ps.router.metrics.rpcs_received for ps in self.nodes)
        msgs = sum(ps.router.metrics.msgs_received for ps in self.nodes)
        return f"{writes} writes, {msgs / max(rpcs, 1):.1f} messages per received frame"


@asynccontextmanager
async def ours_net(edges: set[tuple[int, int]]) -> AsyncIterator[OursNet]:
    params = GossipSubParams(D=6, D_lo=5, D_hi=12, heartbeat_interval=1.0)
    daemon = not STOCK_HOST_FOR_OURS
    async with hosts_on_graph(edges, daemon) as hosts, trio.open_nursery() as nursery:
        nodes: list[PubSub] = []
        net = OursNet(nodes)
        for k, h in enumerate(hosts):

            def on_delivery(d: Delivered, k: int = k) -> None:
                net.tracker.got(d.msg_id, k)

            ps = PubSub(h, params=params, on_delivery=on_delivery, seed=k)
            await nursery.start(ps.run)
            ps.subscribe(TOPIC)
            nodes.append(ps)
        await connect_all(hosts, edges)
        await _settle(lambda i: len(nodes[i].router.topic_peers(TOPIC)), edges)
        yield net
        nursery.cancel_scope.cancel()


class TheirsNet(Net):
    name = "py-libp2p 1.1"

    def __init__(self, pubsubs: list[Any], drop_count: list[int]) -> None:
        super().__init__()
        self.pubsubs = pubsubs
        self._drop_count = drop_count

    async def publish(self, node: int, data: bytes) -> None:
        await self.pubsubs[node].publish(TOPIC, data)

    def drops(self) -> int:
        return self._drop_count[0]


class _CountWarnings(logging.Handler):
    def __init__(self, counter: list[int]) -> None:
        super().__init__(logging.WARNING)
        self.counter = counter

    def emit(self, record: logging.LogRecord) -> None:
        if "fail to deliver message to subscription" in record.getMessage():
            self.counter[0] += 1


@asynccontextmanager
async def theirs_net(edges: set[tuple[int, int]]) -> AsyncIterator[TheirsNet]:
    import libp2p.pubsub.gossipsub as gossipsub_mod
    import libp2p.pubsub.pubsub as pubsub_mod
    from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, GossipSub
    from libp2p.pubsub.pubsub import Pubsub
    from libp2p.tools.anyio_service import background_trio_service

    # count py-libp2p's drops: every refused outbound RPC goes through drop_rpc
    # (it only logs at debug level), a full subscription channel logs a warning
    drops = [0]
    orig_drop = pubsub_mod.drop_rpc

    def counting_drop(*args: Any, **kwargs: Any) -> None:
        drops[0] += 1
        orig_drop(*args, **kwargs)

    sub_log = logging.getLogger(pubsub_mod.__name__)
    handler = _CountWarnings(drops)
    saved = (pubsub_mod.drop_rpc, gossipsub_mod.drop_rpc, sub_log.level, sub_log.propagate)
    pubsub_mod.drop_rpc = gossipsub_mod.drop_rpc = counting_drop
    sub_log.addHandler(handler)
    sub_log.setLevel(logging.WARNING)
    sub_log.propagate = False

    def msg_id(m: Any) -> bytes:
        return hashlib.sha256(m.data).digest()

    try:
        async with hosts_on_graph(edges) as hosts, AsyncExitStack() as stack:
            pubsubs: list[Any] = []
            subs = []
            net = TheirsNet(pubsubs, drops)
            for h in hosts:
                gs = GossipSub(
                    protocols=[PROTOCOL_ID_V11],
                    degree=6,
                    degree_low=5,
                    degree_high=12,
                    heartbeat_interval=1,
                    spam_protection_enabled=False,
                    max_messages_per_topic_per_second=1e9,
                    eclipse_protection_enabled=False,
                )
                ps = Pubsub(h, gs, strict_signing=False, msg_id_constructor=msg_id)
                await stack.enter_async_context(background_trio_service(ps))
                await stack.enter_async_context(background_trio_service(gs))
                await ps.wait_until_ready()
                subs.append(await ps.subscribe(TOPIC))
                pubsubs.append(ps)
            await connect_all(hosts, edges)
            await _settle(lambda i: len(pubsubs[i].peer_topics.get(TOPIC, ())), edges)
            async with trio.open_nursery() as nursery:
                for k, sub in enumerate(subs):

                    async def reader(sub: Any = sub, k: int = k) -> None:
                        while True:
                            m = await sub.get()
                            net.tracker.got(hashlib.sha256(m.data).digest(), k)

                    nursery.start_soon(reader)
                yield net
                nursery.cancel_scope.cancel()
    finally:
        pubsub_mod.drop_rpc, gossipsub_mod.drop_rpc, level, propagate = saved
        sub_log.removeHandler(handler)
        sub_log.setLevel(level)
        sub_log.propagate = propagate


async def _settle(topic_peers: Callable[[int], int], edges: set[tuple[int, int]]) -> None:
    degree = [0] * N
    for a, b in edges:
        degree[a] += 1
        degree[b] += 1
    with trio.move_on_after(20):
        while any(topic_peers(i) < degree[i] for i in range(N)):
            await trio.sleep(0.05)
    await trio.sleep(2.5)  # heartbeats: meshes built


@dataclass
class Config:
    seconds: float  # of the saturated phase
    rate_seconds: float  # of each open-loop phase
    windows_ours: tuple[int, ...]
    windows_theirs: tuple[int, ...]
    rates: tuple[float, ...]


async def run_net(
    make: Callable[[], Any],
    cfg: Config,
    payloads: list[bytes],
    windows: tuple[int, ...],
    cap: float | None,
) -> tuple[Phase | None, list[Phase | None]]:
    """Saturated first, at each window in turn (the best one that lost and dropped
    nothing is kept; if none, the smallest), then each rate (those above 90% of
    `cap` skipped); a teardown error after the figures were taken is reported and
    ignored (py-libp2p's services sometimes fail while shutting down: "nursery
    closed to new arrivals")."""
    sat: Phase | None = None
    rates: list[Phase | None] = []
    try:
        async with make() as net:
            cpu0 = time.process_time()
            await trio.sleep(1.0)
            idle = time.process_time() - cpu0
            print(f"{net.name}: idle network CPU share {idle:.0%} (heartbeats, transport timers)")
            for window in windows:
                ph = await saturated(net, payloads, cfg.seconds, window)
                ph.notes = net.notes()
                ph.window = window
                if len(windows) > 1:
                    print(
                        f"  {net.name} saturated at window {window}: {ph.rate:.1f} msg/s to all "
                        f"9, {ph.cpu_share:.0%} CPU {_valid(ph)}"
                        + (" (ran out of prepared messages)" if ph.ran_out else "")
                    )
                clean = not ph.lost and not ph.drops
                if sat is None or (clean and (ph.rate > sat.rate or sat.lost or sat.drops)):
                    sat = ph
                await trio.sleep(0.5)
            assert sat is not None  # windows is never empty
            limit = sat.rate if cap is None else cap
            for r in cfg.rates:
                if net.name != "ours" and r > max(0.9 * limit, FLOOR_RATE):
                    rates.append(None)
                    continue
                await trio.sleep(0.5)
                ph = await open_loop(net, payloads, cfg.rate_seconds, r)
                ph.notes = net.notes()
                rates.append(ph)
    except Exception as exc:
        if sat is None or len(rates) < len(cfg.rates):
            raise
        print(f"(error during teardown ignored: {type(exc).__name__}: {exc})")
    return sat, rates


def _valid(p: Phase) -> str:
    """A baseline phase with drops is invalid; any phase that left messages
    undelivered when its drain ended was run past what the machine gave it."""
    notes = []
    if p.drops and p.name != "ours":
        notes.append("INVALID (drops)")
    if p.lost:
        notes.append(f"overloaded: {p.lost} not at all 9 after the 2 s drain")
    return "; ".join(notes)


def report(
    cfg: Config,
    ours: tuple[Phase | None, list[Phase | None]],
    theirs: tuple[Phase | None, list[Phase | None]],
) -> None:
    os_, or_ = ours
    ts, tr = theirs
    assert os_ is not None and ts is not None
    print()
    print("(a) saturated capacity (closed loop; msg/s delivered to all 9 other nodes)")
    print(
        f"{'':16}{'window':>7}{'published':>10}{'to all 9':>9}{'lost':>6}{'drops':>6}"
        f"{'msg/s':>9}{'CPU':>6}{'msg/CPU-s':>10}{'p50 ms':>9}{'p99 ms':>9}"
    )
    for p in (os_, ts):
        print(
            f"{p.name:16}{p.window:>7}{p.published:>10}{p.complete:>9}{p.lost:>6}{p.drops:>6}"
            f"{p.rate:>9.1f}{p.cpu_share:>6.0%}{p.per_cpu_second:>10.1f}"
            f"{p.pct(0.5):>9.1f}{p.pct(0.99):>9.1f} {_valid(p)}"
        )
    print(f"  ours: {os_.notes}")
    print("  (CPU: process CPU / wall time; msg/CPU-s: delivered to all 9 per CPU second)")
    invalid = " -- INVALID: the baseline dropped messages" if ts.drops else ""
    cap = os_.rate / ts.rate if ts.rate else float("inf")
    print(
        f"capacity ratio = ours msg/s / py-libp2p 1.1 msg/s = {cap:.1f}x (target >= 100x)" + invalid
    )
    per_cpu = os_.per_cpu_second / ts.per_cpu_second if ts.per_cpu_second else float("inf")
    print(
        f"capacity per CPU second = ours msg/CPU-s / py-libp2p 1.1 msg/CPU-s = {per_cpu:.1f}x"
        + invalid
    )
    print()
    print(
        "(b) open loop at equal rates: p50/p99 ms over (message, receiving node) pairs,"
        " from when each was due;"
    )
    print("    CPU ms per published message = process CPU of the 10-node network / published;")
    print("    achieved = the rate really published (below the offered one: the process starved)")
    print(
        f"{'msg/s':>6} {'router':16}{'sent':>6}{'achieved':>9}{'lost':>6}{'drops':>6}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/msg':>11}{'CPU':>6}"
    )
    for rate, o, t in zip(cfg.rates, or_, tr, strict=True):
        pair: tuple[Phase | None, Phase | None] = (o, t)
        for q in pair:
            if q is None:
                print(
                    f"{rate:>6.0f} {'py-libp2p 1.1':16}  not offered: above 90% of its "
                    f"saturated capacity ({ts.rate:.0f} msg/s)"
                )
                continue
            print(
                f"{rate:>6.0f} {q.name:16}{q.published:>6}{q.achieved:>9.1f}{q.lost:>6}{q.drops:>6}"
                f"{q.pct(0.5):>9.1f}{q.pct(0.99):>9.1f}{q.cpu_per_msg_ms:>11.2f}"
                f"{q.cpu_share:>6.0%} {_valid(q)}"
            )
        if o is not None and t is not None:
            print(
                f"{'':7}p99 ours / p99 py-libp2p = {o.pct(0.99) / t.pct(0.99):.2f}x (target <= 1); "
                f"CPU per message ours / py-libp2p = "
                f"{o.cpu_per_msg_ms / t.cpu_per_msg_ms:.2f}x (target <= 0.5)"
            )


async def main(cfg: Config, seed: int, only_ours: bool = False) -> None:
    rng = random.Random(seed)
    edges = random_graph(N, 4, rng)
    t = time.perf_counter()
    # enough for ours at up to 6000 msg/s in every saturated phase: at 2000 the
    # later windows found none left once ours passed ~3000 msg/s
    need = int(cfg.seconds * 6000 * len(cfg.windows_ours))
    need += int(cfg.rate_seconds * sum(RATES)) + 200
    payloads = make_orders(need)
    print(
        f"{len(payloads)} signed orders of {len(payloads[0])} bytes "
        f"prepared in {time.perf_counter() - t:.1f}s; load average {os.getloadavg()[0]:.2f} "
        f"on {os.cpu_count()} cores"
    )
    theirs: tuple[Phase | None, list[Phase | None]] = (None, [])
    if not only_ours:
        theirs = await run_net(lambda: theirs_net(edges), cfg, payloads, cfg.windows_theirs, None)
    ours = await run_net(lambda: ours_net(edges), cfg, payloads, cfg.windows_ours, None)
    if only_ours:
        theirs = (Phase("py-libp2p 1.1", None), [None] * len(cfg.rates))
    report(cfg, ours, theirs)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    logging.disable(logging.INFO)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="saturated phase length")
    ap.add_argument("--rate-seconds", type=float, default=6.0, help="each open-loop phase")
    ap.add_argument(
        "--window",
        type=str,
        default="256,1024,2048",
        help="our messages in flight: each is run, its best clean one is kept",
    )
    ap.add_argument(
        "--window-theirs",
        type=str,
        default="8,16,32,64",
        help="py-libp2p's in flight: each is run, its best clean one is kept",
    )
    ap.add_argument("--rates", type=str, default=",".join(f"{r:g}" for r in RATES))
    ap.add_argument("--quick", action="store_true", help="3 s phases: about a minute in all")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only-ours", action="store_true", help="skip the py-libp2p baseline")
    ap.add_argument(
        "--ours-on-stock-host",
        action="store_true",
        help="run ours on py-libp2p's stock host (its Yamux, its TCP), as the baseline runs",
    )
    a = ap.parse_args()
    STOCK_HOST_FOR_OURS = a.ours_on_stock_host
    if a.quick:
        a.seconds, a.rate_seconds = 4.0, 3.0
    conf = Config(
        a.seconds,
        a.rate_seconds,
        tuple(int(x) for x in a.window.split(",")),
        tuple(int(x) for x in a.window_theirs.split(",")),
        tuple(float(x) for x in a.rates.split(",")),
    )
    trio.run(main, conf, a.seed, a.only_ours)
