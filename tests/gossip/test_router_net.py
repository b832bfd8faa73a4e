"""Many routers wired together in virtual time (gossip.testing.VirtualNet): whole
protocol runs, through the codec and through the simulator's unencoded path."""

from __future__ import annotations

import random
from typing import Any

import pytest

from gossip.params import GossipSubParams
from gossip.testing import VirtualNet
from gossip.validation import ValidationResult


def accept(topic: str, data: bytes, peer: bytes) -> ValidationResult:
    return ValidationResult.ACCEPT


def _net(n: int, degree: int, seed: int, encode: bool, **kw: Any) -> VirtualNet:
    net = VirtualNet(latency=0.005, encode=encode)
    names = [b"n%03d" % i for i in range(n)]
    for name in names:
        net.new(name, random.Random(name), validator=accept, **kw)
    rng = random.Random(seed)
    for a in names:
        for b in rng.sample(names, degree):
            if a != b and (a, b) not in net.links:
                net.connect(a, b)
    for name in names:
        net.routers[name].subscribe("t", net.now)
    net.run_until(3.0)
    return net


@pytest.mark.parametrize("encode", [True, False])
def test_every_message_reaches_every_node(encode: bool) -> None:
    net = _net(40, 4, seed=7, encode=encode)
    names = sorted(net.routers)
    for name in names:
        mesh = net.routers[name].mesh_peers("t")
        assert 1 <= len(mesh) <= 12
    for i in range(30):
        net.routers[names[i]].publish("t", b"m%d" % i, net.now)
        net.run_until(net.now + 0.02)
    net.run_until(net.now + 1.0)
    for name in names:
        assert len({d.msg_id for d in net.delivered[name]}) == 30


def test_gossip_repairs_a_mesh_gap() -> None:
    """Without flood publishing, a node outside every mesh still learns messages
    through IHAVE/IWANT within a few heartbeats."""
    params = GossipSubParams(flood_publish=False, D=2, D_lo=1, D_hi=3, D_score=1, D_out=0)
    net = _net(12, 3, seed=3, encode=True, params=params)
    names = sorted(net.routers)
    lonely = names[-1]
    # take the lonely node out of every mesh, with a long backoff on both sides
    for other in names:
        r = net.routers[other]
        r._mesh["t"].pop(lonely, None)
        r._add_backoff("t", lonely, net.now + 100)
        net.routers[lonely]._add_backoff("t", other, net.now + 100)
    net.routers[lonely]._mesh["t"].clear()
    net.routers[names[0]].publish("t", b"gap", net.now)
    net.run_until(net.now + 0.1)
    net.run_until(net.now + 3.0)
    assert [d.data for d in net.delivered[lonely]] == [b"gap"]
    assert net.routers[lonely].metrics.iwant_sent >= 1
