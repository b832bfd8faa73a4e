"""Simulated delivery times equal the analytic sums on a line and on a tree.

Fixed link latency L, uplink bandwidth B, no loss: a frame of w bytes sent at
t arrives at (t + w*8/B) + L when the sender's uplink is idle, and the k-th
frame queued on one uplink at the same instant leaves k*w*8/B later. The
expected times below are computed with the same additions in the same order
as the model, so the comparison is exact (==), not approximate.
"""

from __future__ import annotations

import pytest

from gossip.params import GossipSubParams
from gossip.wire import RPC, Message
from simulations.engine import EngineParams, Simulator
from simulations.latency import LatencyParams
from simulations.network import NetworkParams
from simulations.topology import TopologyParams
from simulations.world import World, WorldParams

TOPIC = "/sim/exact"
L = 0.037
B = 2e6
DATA = b"order-" + bytes(range(200)) * 3


def _world(kind: str, n: int, uplink: float | None, **topo: int) -> tuple[Simulator, World]:
    sim = Simulator(EngineParams(seed=11))
    params = WorldParams(
        nodes=n,
        network=NetworkParams(
            topology=TopologyParams(kind=kind, **topo),
            latency=LatencyParams(model="fixed", fixed_s=L),
            uplink_bps=uplink,
        ),
        gossip=GossipSubParams(),
        start_spread_s=0.0,
    )
    world = World(sim, params)
    world.start_all([TOPIC])
    sim.run(until=5.5)  # meshes formed; publish between heartbeats (at .1 + k)
    return sim, world


def _wire(world: World) -> int:
    """Bytes on the wire of an RPC carrying just this message, built independently."""
    rpc_size = len(RPC(publish=[Message(TOPIC, DATA)]).encode())
    return world.net.wire_bytes(rpc_size)


def test_line_delivery_times_are_sums_of_hops() -> None:
    n = 12
    sim, world = _world("line", n, B)
    ser = _wire(world) * (8.0 / B)
    t0 = sim.now
    mid = world.publish(0, TOPIC, DATA)
    sim.run(until=t0 + 1.0)
    got = world.recorder.first[mid]
    expected = {0: t0}
    t = t0
    for k in range(1, n):
        t = (t + ser) + L
        expected[k] = t
    assert got == expected
    # and the closed form, to the last bits of float rounding
    for k in range(n):
        assert got[k] == pytest.approx(t0 + k * (ser + L), rel=0, abs=1e-12)


def test_tree_without_bandwidth_limit_is_depth_times_latency() -> None:
    n = 31  # complete binary tree of depth 4
    sim, world = _world("tree", n, None, branching=2)
    t0 = sim.now
    mid = world.publish(0, TOPIC, DATA)
    sim.run(until=t0 + 1.0)
    got = world.recorder.first[mid]
    depth = {0: 0}
    for v in range(1, n):
        depth[v] = depth[(v - 1) // 2] + 1
    expected: dict[int, float] = {}
    for v in range(n):
        t = t0
        for _ in range(depth[v]):
            t = t + L
        expected[v] = t
    assert got == expected


def test_tree_with_bandwidth_queues_siblings_on_the_parent_uplink() -> None:
    n = 15
    sim, world = _world("tree", n, B, branching=2)
    ser = _wire(world) * (8.0 / B)
    t0 = sim.now
    mid = world.publish(0, TOPIC, DATA)
    sim.run(until=t0 + 1.0)
    got = world.recorder.first[mid]
    assert len(got) == n
    for v in range(n):
        children = [c for c in (2 * v + 1, 2 * v + 2) if c < n]
        if not children:
            continue
        # the parent sends one copy per child, back to back on its uplink
        first = (got[v] + ser) + L
        second = ((got[v] + ser) + ser) + L
        assert sorted(got[c] for c in children) == [first, second]
