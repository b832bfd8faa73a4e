"""CPU per unique message per node, next to one order signature verification.

Same setting as gossip_throughput.py (10 py-libp2p hosts in one process over
loopback TCP, Noise + Yamux, random graph, D=6, distinct ~256-byte signed
orders), under a sustained open-loop load of `--rate` messages/s. The process
CPU time over the run divided by (unique messages published x 9 receiving
nodes) is the whole gossip stack's cost per unique message per node:
transport (Noise, Yamux, trio), codec and router, duplicates included in the
cost but not in the count (a signature is checked once per unique message, so
this is the figure to set beside one recovery). Application validation is off
here so that the figure is the gossip overhead alone; the same run then times
one secp256k1 recovery of an EIP-712 order signature (what the order validator
does per unique message) and prints the ratio. The cost per copy received off
the wire (duplicates counted) is printed too, without a ratio. It also prints
the router+codec share alone (no sockets) and our hand-written codec against the
protobuf package (upb) on the same RPC.

    .venv/bin/python -m benchmarks.gossip_cpu [--seconds 6] [--rate 200]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import time
from typing import Any

os.environ.setdefault("PY_YAMUX_RELEASE_ON_READ", "0")  # see gossip_throughput.py

import trio

from benchmarks.gossip_throughput import (
    TOPIC,
    N,
    connect_all,
    hosts_on_graph,
    make_orders,
    random_graph,
)
from gossip import codec, eip712
from gossip.eip712 import SigningDomain
from gossip.events import Delivered
from gossip.params import GossipSubParams
from gossip.testing import VirtualNet
from gossip.validation import ValidationResult
from gossip.wire import RPC, Message, decode_rpc
from p2pnode.pubsub import PubSub

DOMAIN = SigningDomain(chain_id=31337)


def signature_verify_us(orders: list[bytes]) -> float:
    """Mean µs of one EIP-712 digest + secp256k1 recovery, as the validator does."""
    msgs = [codec.decode(o) for o in orders]
    rounds = []
    for _ in range(5):
        t = time.process_time()
        for m in msgs:
            eip712.recover_address(m.digest(DOMAIN), m.signature)
        rounds.append((time.process_time() - t) / len(msgs) * 1e6)
    return sorted(rounds)[len(rounds) // 2]  # the median round


def router_only_us(orders: list[bytes], edges: set[tuple[int, int]]) -> float:
    """Router + codec µs per delivered message per node, routers wired in memory."""

    def accept(t: str, d: bytes, p: bytes) -> ValidationResult:
        return ValidationResult.ACCEPT

    net = VirtualNet(latency=0.001)
    names = [b"n%d" % i for i in range(N)]
    for n in names:
        net.new(n, random.Random(n), validator=accept)
    for a, b in edges:
        net.connect(names[a], names[b])
    for n in names:
        net.routers[n].subscribe(TOPIC, net.now)
    net.run_until(3.0)
    t = time.process_time()
    for i, p in enumerate(orders):
        net.routers[names[i % N]].publish(TOPIC, p, net.now)
        if i % 10 == 9:
            net.run_until(net.now + 0.005)
    net.run_until(net.now + 1.0)
    dt = time.process_time() - t
    return dt / (len(orders) * (N - 1)) * 1e6


def codec_us(orders: list[bytes]) -> tuple[float, float, float]:
    """Decode of one RPC carrying 5 orders into what the router needs (topic, data,
    author fields and the raw message bytes for forwarding): ours, protobuf (upb)
    plus the conversion, and upb's bare parse."""
    from libp2p.pubsub.pb import rpc_pb2

    body = RPC(publish=[Message(TOPIC, o) for o in orders[:5]]).encode()
    reps = 5000
    t = time.perf_counter()
    for _ in range(reps):
        decode_rpc(body)
    ours = (time.perf_counter() - t) / reps * 1e6

    def opt(pm: Any, name: str) -> bytes | None:
        return getattr(pm, name) if pm.HasField(name) else None

    t = time.perf_counter()
    for _ in range(reps):
        pr = rpc_pb2.RPC()
        pr.ParseFromString(body)
        [
            Message(
                pm.topicIDs[0],
                pm.data,
                opt(pm, "from_id"),
                opt(pm, "seqno"),
                opt(pm, "signature"),
                opt(pm, "key"),
                pm.SerializeToString(),
            )
            for pm in pr.publish
        ]
    converted = (time.perf_counter() - t) / reps * 1e6
    t = time.perf_counter()
    for _ in range(reps):
        rpc_pb2.RPC().ParseFromString(body)
    bare = (time.perf_counter() - t) / reps * 1e6
    return ours, converted, bare


async def gossip_cpu_us(
    orders: list[bytes], edges: set[tuple[int, int]], seconds: float, rate: float
) -> tuple[float, float, int, int]:
    deliveries = 0
    wire_msgs = 0
    params = GossipSubParams(D=6, D_lo=5, D_hi=12)
    async with hosts_on_graph(edges, daemon=True) as hosts, trio.open_nursery() as nursery:
        nodes: list[PubSub] = []
        for h in hosts:

            def on_delivery(d: Delivered, me: bytes = h.get_id().to_bytes()) -> None:
                nonlocal deliveries
                if d.received_from != me:
                    deliveries += 1

            ps = PubSub(h, params=params, on_delivery=on_delivery, seed=len(nodes))
            await nursery.start(ps.run)
            ps.subscribe(TOPIC)
            nodes.append(ps)
        await connect_all(hosts, edges)
        await trio.sleep(3.0)
        before = sum(ps.router.metrics.msgs_received for ps in nodes)
        deliveries = 0
        cpu0 = time.process_time()
        start = trio.current_time()
        i = 0
        while trio.current_time() - start < seconds and i < len(orders):
            await nodes[i % N].publish(TOPIC, orders[i])
            i += 1
            await trio.sleep_until(start + i / rate)
        await trio.sleep(1.0)  # drain
        cpu = time.process_time() - cpu0  # the drain second is counted too: it is work
        wire_msgs = sum(ps.router.metrics.msgs_received for ps in nodes) - before
        writes = sum(ps.metrics.writes for ps in nodes)
        print(f"writes: {writes}, wire messages per write: {wire_msgs / max(writes, 1):.1f}")
        nursery.cancel_scope.cancel()
    per_unique = cpu / max(i * (N - 1), 1) * 1e6
    per_wire = cpu / max(wire_msgs, 1) * 1e6
    return per_unique, per_wire, i, deliveries


async def main(seconds: float, rate: float, seed: int) -> None:
    rng = random.Random(seed)
    edges = random_graph(N, 4, rng)
    orders = make_orders(int(seconds * rate) + 50)
    per_unique, per_wire, published, deliveries = await gossip_cpu_us(orders, edges, seconds, rate)
    sig = signature_verify_us(orders[:300])
    router = router_only_us(orders[:2000], edges)
    ours, upb, bare = codec_us(orders)
    print(f"load: {published} orders of {len(orders[0])} bytes at {rate:.0f}/s, 10 nodes")
    print(f"deliveries: {deliveries} of {published * (N - 1)} expected")
    print(f"gossip CPU per unique message per receiving node: {per_unique:8.1f} µs")
    print(f"  of which router + codec (no sockets):            {router:8.1f} µs")
    print(f"gossip CPU per copy received off the wire (dups counted): {per_wire:.1f} µs")
    print(f"one EIP-712 order signature recovery (digest + recovery): {sig:8.1f} µs")
    print(
        "ratio: gossip CPU per unique message per node / one signature recovery = "
        f"{per_unique / sig:.2f}x (target <= 3x)"
    )
    print(
        f"codec, 5-order RPC decoded for the router: ours {ours:.1f} µs, "
        f"protobuf/upb + conversion {upb:.1f} µs (upb bare parse {bare:.1f} µs)"
    )


if __name__ == "__main__":
    logging.disable(logging.WARNING)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    trio.run(main, a.seconds, a.rate, a.seed)
