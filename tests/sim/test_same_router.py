"""The simulator drives the very router class the daemon drives."""

from __future__ import annotations

import ast
import inspect

import gossip.router
import p2pnode.pubsub
import simulations.node
import simulations.world
from simulations.engine import Simulator
from simulations.world import World, WorldParams


def test_daemon_driver_and_simulator_use_gossip_router_class() -> None:
    assert p2pnode.pubsub.GossipRouter is gossip.router.GossipRouter
    assert simulations.world.GossipRouter is gossip.router.GossipRouter
    assert simulations.node.GossipRouter is gossip.router.GossipRouter
    # the daemon's PubSub builds its router from that name
    src = inspect.getsource(p2pnode.pubsub.PubSub)
    calls = {
        n.func.id
        for n in ast.walk(ast.parse(src))
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    assert "GossipRouter" in calls


def test_every_simulated_node_runs_an_unmodified_gossip_router() -> None:
    sim = Simulator()
    from simulations.network import NetworkParams
    from simulations.topology import TopologyParams

    world = World(
        sim, WorldParams(nodes=20, network=NetworkParams(topology=TopologyParams(degree=4)))
    )
    assert all(type(n.router) is gossip.router.GossipRouter for n in world.nodes)
    world.start_all(["/t"])
    sim.run(until=3.0)
    assert all(n.router.metrics.heartbeats >= 2 for n in world.nodes)
