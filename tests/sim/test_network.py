"""The network model: sizes on the wire, serialization, FIFO, loss, topologies."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from p2pnode.errors import UserError
from simulations.engine import Simulator
from simulations.latency import REGIONS, LatencyParams, one_way_matrix, rtt_ms
from simulations.network import Network, NetworkParams
from simulations.topology import TopologyParams, _to_adjacency, random_regular


def _net(
    sim: Simulator, n: int = 4, **kw: object
) -> tuple[Network, list[tuple[float, int, int, object]]]:
    params = NetworkParams(
        topology=TopologyParams(kind="line"),
        latency=LatencyParams(model="fixed", fixed_s=0.01),
        **kw,  # type: ignore[arg-type]
    )
    net = Network(sim, n, params, random.Random(1), random.Random(2))
    got: list[tuple[float, int, int, object]] = []
    net.deliver = lambda s, d, p, size: got.append((sim.now, s, d, p))
    return net, got


def test_wire_bytes_adds_length_prefix_stream_and_segment_headers() -> None:
    sim = Simulator()
    net, _ = _net(sim)
    # 100-byte RPC: 1-byte varint prefix, 30 B yamux+noise, one 40 B TCP/IP header
    assert net.wire_bytes(100) == 100 + 1 + 30 + 40
    # 3000-byte RPC: 2-byte prefix; 3032 bytes need 3 segments of 1460
    assert net.wire_bytes(3000) == 3000 + 2 + 30 + 3 * 40
    bare, _ = _net(sim, transport_overhead=False)
    assert bare.wire_bytes(3000) == 3002


def test_uplink_is_shared_and_serializes_in_order() -> None:
    sim = Simulator()
    net, got = _net(sim, n=3, uplink_bps=8000.0)  # 1000 bytes per second
    net.connect(1, 2)  # node 1 now has neighbours 0 and 2 (line 0-1-2 already) -- same set
    net.send(0.0, 1, 0, "a", 500)
    net.send(0.0, 1, 2, "b", 500)
    net.send(0.0, 1, 0, "c", 250)
    sim.run()
    assert got == [(0.5 + 0.01, 1, 0, "a"), (1.0 + 0.01, 1, 2, "b"), (1.25 + 0.01, 1, 0, "c")]


def test_frames_on_one_link_never_overtake_under_retransmission() -> None:
    sim = Simulator()
    net, got = _net(sim, n=2, uplink_bps=None, loss=0.3)
    for k in range(200):
        sim.schedule(k * 0.001, net.send, k * 0.001, 0, 1, k, 100)
    sim.run()
    assert [p for _, _, _, p in got] == list(range(200))
    assert net.counters.retransmissions > 0
    times = [t for t, *_ in got]
    assert times == sorted(times)
    # a retransmission costs at least the minimum RTO
    assert max(b - a for a, b in itertools.pairwise(times)) >= 0.2 - 0.001


def test_drop_mode_loses_frames_and_counts_them() -> None:
    sim = Simulator()
    net, got = _net(sim, n=2, uplink_bps=None, loss=0.2, loss_mode="drop")
    for k in range(1000):
        net.send(0.0, 0, 1, k, 100)
    sim.run()
    assert net.counters.frames_dropped + len(got) == 1000
    assert 100 < net.counters.frames_dropped < 300


def test_frames_to_unconnected_or_offline_nodes_are_not_delivered() -> None:
    sim = Simulator()
    net, got = _net(sim, n=3)
    net.send(0.0, 0, 2, "no link", 10)
    net.send(0.0, 0, 1, "goes offline", 10)
    net.online[1] = False
    sim.run()
    assert got == []
    assert net.counters.frames_dropped == 1 and net.counters.frames_to_offline == 1


def test_frames_in_flight_on_a_link_that_closes_are_not_delivered() -> None:
    sim = Simulator()
    net, got = _net(sim, n=3)
    net.send(0.0, 0, 1, "before any close", 10)
    sim.run()
    net.send(sim.now, 0, 1, "in flight at the close", 10)
    net.send(sim.now, 1, 0, "the other way", 10)
    net.disconnect(0, 1)
    net.connect(0, 2)
    net.send(sim.now, 0, 2, "on a link still open", 10)
    sim.run()
    assert [p for _, _, _, p in got] == ["before any close", "on a link still open"]
    assert net.counters.frames_to_offline == 2


def test_region_latencies_are_symmetric_and_plausible() -> None:
    m = one_way_matrix()
    for i, a in enumerate(REGIONS):
        for j, b in enumerate(REGIONS):
            assert m[i][j] == m[j][i] == rtt_ms(a, b) / 2000.0
            assert 0.005 <= m[i][j] <= 0.2
        assert m[i][i] == min(m[i])  # staying in a region is fastest
    sim = Simulator()
    net = Network(sim, 500, NetworkParams(), random.Random(3), random.Random(4))
    lat = [net.latency(a, b) for a in range(0, 500, 7) for b in net.adj[a]]
    assert all(net.latency(a, b) == net.latency(b, a) for a in range(50) for b in net.adj[a])
    assert min(lat) > 0.01 and max(lat) < 0.6


@pytest.mark.parametrize("kind", ["random_regular", "scale_free", "geographic"])
def test_topologies_are_connected_with_the_asked_degree(kind: str) -> None:
    sim = Simulator()
    params = NetworkParams(topology=TopologyParams(kind=kind, degree=10))
    net = Network(sim, 400, params, random.Random(5), random.Random(6))
    degrees = [len(a) for a in net.adj]
    assert 6 <= sum(degrees) / len(degrees) <= 14
    if kind == "random_regular":
        assert set(degrees) == {10}
    if kind == "scale_free":
        assert max(degrees) > 4 * 10  # hubs
    assert all(math.isfinite(d) for d in net.shortest_delays(0))  # connected


@pytest.mark.parametrize(
    ("n", "degree", "seed"), [(10, 9, 1), (30, 20, 2), (301, 6, 3), (1000, 20, 4), (64, 3, 5)]
)
def test_topology_matches_networkx(n: int, degree: int, seed: int) -> None:
    """The in-house random regular graph is networkx's for the same seed: the same
    neighbour sets, iterated in the same order (dense cases retry the pairing)."""
    import networkx as nx

    ours = random_regular(degree, n, seed)
    theirs = _to_adjacency(nx.random_regular_graph(degree, n, seed=seed), n)
    assert [list(s) for s in ours] == [list(s) for s in theirs]
    assert all(len(s) == degree for s in ours)


def test_geographic_links_are_mostly_regional() -> None:
    sim = Simulator()
    params = NetworkParams(topology=TopologyParams(kind="geographic", degree=10))
    net = Network(sim, 600, params, random.Random(5), random.Random(6))
    same = sum(1 for a in range(600) for b in net.adj[a] if net.regions[a] == net.regions[b])
    total = sum(len(x) for x in net.adj)
    assert same / total > 0.7  # the rest: 2 long-range links per node


@pytest.mark.parametrize(
    ("params", "name"),
    [
        (NetworkParams(loss=0.7), "loss"),
        (NetworkParams(uplink_bps=1.0), "uplink_bps"),
        (NetworkParams(loss_mode="x"), "loss_mode"),
        (NetworkParams(topology=TopologyParams(kind="ring")), "topology kind"),
        (NetworkParams(topology=TopologyParams(degree=1)), "degree"),
        (NetworkParams(latency=LatencyParams(model="x")), "latency model"),
    ],
)
def test_bad_network_params_name_the_parameter(params: NetworkParams, name: str) -> None:
    with pytest.raises(UserError, match=name):
        params.validate(100)
