"""The CPU and write-coalescing model of a simulated node (simulations/cpu.py)."""

from __future__ import annotations

import random

import pytest

from gossip.errors import UserError
from simulations.cpu import Cpu, CpuParams
from simulations.engine import EngineParams, Simulator
from simulations.latency import LatencyParams
from simulations.network import NetworkParams
from simulations.topology import TopologyParams
from simulations.world import World, WorldParams, payload

TOPIC = "/t"
LINK = 0.002
PUBLISH_AT = 2.5  # between heartbeats (both nodes start at 0, beat every 1 s)


def two_nodes(cpu: CpuParams, nodes: int = 2) -> tuple[Simulator, World]:
    sim = Simulator(EngineParams(seed=3))
    net = NetworkParams(
        topology=TopologyParams(kind="line"),
        latency=LatencyParams(model="fixed", fixed_s=LINK),
        uplink_bps=None,
    )
    world = World(sim, WorldParams(nodes=nodes, network=net, start_spread_s=0.0, cpu=cpu))
    world.start_all([TOPIC])
    sim.run(until=PUBLISH_AT)
    return sim, world


def publish_at(sim: Simulator, world: World, node: int, times: list[float]) -> list[bytes]:
    ids: list[bytes] = []
    for t in times:
        sim.schedule(t, lambda n=node: ids.append(world.publish(n, TOPIC, payload(sim.rng, 200))))
    sim.run(until=max(times) + 0.4)
    return ids


COSTS = CpuParams(
    read_s=0.0003, message_s=0.0001, write_s=0.0004, write_message_s=0.00005, heartbeat_s=0.0002
)


def test_one_hop_costs_publish_write_link_and_read_exactly() -> None:
    sim, world = two_nodes(COSTS)
    (mid,) = publish_at(sim, world, 0, [PUBLISH_AT + 0.1])
    c = COSTS
    written = (PUBLISH_AT + 0.1 + c.message_s) + (c.write_s + c.write_message_s * 1)
    expected = (written + LINK) + (c.read_s + c.message_s * 1)
    assert world.recorder.first[mid][1] == pytest.approx(expected, rel=0, abs=1e-12)


def test_without_cpu_model_a_hop_is_the_link_alone() -> None:
    sim = Simulator(EngineParams(seed=3))
    net = NetworkParams(
        topology=TopologyParams(kind="line"),
        latency=LatencyParams(model="fixed", fixed_s=LINK),
        uplink_bps=None,
    )
    world = World(sim, WorldParams(nodes=2, network=net, start_spread_s=0.0))
    world.start_all([TOPIC])
    sim.run(until=PUBLISH_AT)
    (mid,) = publish_at(sim, world, 0, [PUBLISH_AT + 0.1])
    assert world.recorder.first[mid][1] == pytest.approx(PUBLISH_AT + 0.1 + LINK, abs=1e-12)


def test_adaptive_writes_an_idle_stream_at_once_and_coalesces_behind_a_write() -> None:
    slow = CpuParams(read_s=0.0001, message_s=0.0, write_s=0.010, write_message_s=0.0)
    sim, world = two_nodes(slow)
    frames0 = world.net.counters.frames_sent
    t0 = PUBLISH_AT + 0.1
    ids = publish_at(sim, world, 0, [t0, t0 + 0.001, t0 + 0.002, t0 + 0.003])
    # the first at once; the three queued behind its 10 ms write leave in one write
    assert world.net.counters.frames_sent - frames0 == 2
    first = [world.recorder.first[m][1] for m in ids]
    assert first[0] == pytest.approx(t0 + 0.010 + LINK + 0.0001, abs=1e-12)
    second_write_done = t0 + 0.010 + 0.010
    assert first[1] == first[2] == first[3]
    assert first[1] == pytest.approx(second_write_done + LINK + 0.0001 * 1, abs=1e-12)


def test_hold_waits_out_the_hold_after_a_write_unless_flush_at_is_queued() -> None:
    hold = CpuParams(
        read_s=0.0001,
        message_s=0.0,
        write_s=0.0001,
        write_message_s=0.0,
        coalescing="hold",
        hold_s=0.05,
        flush_at=3,
    )
    sim, world = two_nodes(hold)
    t0 = PUBLISH_AT + 0.1
    a, b = publish_at(sim, world, 0, [t0, t0 + 0.01])
    first_done = t0 + 0.0001
    assert world.recorder.first[a][1] == pytest.approx(first_done + LINK + 0.0001, abs=1e-12)
    held = first_done + 0.05
    assert world.recorder.first[b][1] == pytest.approx(held + 0.0001 + LINK + 0.0001, abs=1e-12)

    # flush_at messages queued during the hold: written without waiting it out
    t1 = PUBLISH_AT + 0.7  # after the run above ended, 0.5 s after the last write
    ids = publish_at(sim, world, 0, [t1, t1 + 0.001, t1 + 0.002, t1 + 0.003])
    last = world.recorder.first[ids[3]][1]
    assert last == pytest.approx(t1 + 0.003 + 0.0001 + LINK + 0.0001, abs=1e-12)


def test_a_shared_cpu_serialises_the_nodes_work() -> None:
    costs = CpuParams(read_s=0.001, message_s=0.0, write_s=0.001, write_message_s=0.0)
    own = two_nodes(costs, nodes=3)
    shared = two_nodes(CpuParams(**{**costs.__dict__, "shared": True}), nodes=3)
    lat = []
    for sim, world in (own, shared):
        t0 = PUBLISH_AT + 0.1
        ids = publish_at(sim, world, 0, [t0]) + publish_at(sim, world, 2, [t0 + 0.5])
        lat.append(
            [
                t - world.recorder.published[m][1]
                for m in ids
                for t in world.recorder.first[m].values()
            ]
        )
    assert max(lat[1]) > max(lat[0])
    assert shared[1].shared_cpu is not None and shared[1].shared_cpu.busy_s > 0


def test_a_run_with_the_cpu_model_is_deterministic() -> None:
    def run() -> list[tuple[bytes, list[tuple[int, float]]]]:
        sim = Simulator(EngineParams(seed=9))
        world = World(
            sim,
            WorldParams(
                nodes=40,
                network=NetworkParams(topology=TopologyParams(degree=6)),
                cpu=CpuParams(shared=True),
            ),
        )
        world.start_all([TOPIC])
        sim.run(until=3.0)

        def pub(k: int, data: bytes) -> None:
            world.publish(k, TOPIC, data)

        for k in range(20):
            sim.schedule(3.0 + k * 0.01, pub, k, payload(sim.rng, 300))
        sim.run(until=5.0)
        return sorted((m, sorted(d.items())) for m, d in world.recorder.first.items())

    a = run()
    assert a == run()
    assert all(len(d) == 40 for _, d in a)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("read_s", -1.0, "read_s must be in [0, 1]"),
        ("coalescing", "nagle", "coalescing must be one of adaptive, hold"),
        ("max_write_messages", 0, "max_write_messages must be >= 1"),
        ("hold_s", 11.0, "hold_s must be in [0, 10]"),
        ("flush_at", 0, "flush_at must be >= 1"),
        ("wake_s", (0.1, -0.1), "wake_s must hold delays in [0, 1] s"),
    ],
)
def test_cpu_params_name_the_bad_parameter(field: str, value: object, words: str) -> None:
    with pytest.raises(UserError, match=words.replace("[", r"\[").replace("]", r"\]")):
        CpuParams(**{field: value}).validate()  # type: ignore[arg-type]


def test_a_frame_that_finds_the_cpu_idle_waits_a_wake_up_delay() -> None:
    woken = CpuParams(**{**COSTS.__dict__, "wake_s": (0.004,)})
    sim, world = two_nodes(woken)
    (mid,) = publish_at(sim, world, 0, [PUBLISH_AT + 0.1])
    c = COSTS
    written = (PUBLISH_AT + 0.1 + c.message_s) + (c.write_s + c.write_message_s * 1)
    expected = (written + LINK + 0.004) + (c.read_s + c.message_s * 1)
    assert world.recorder.first[mid][1] == pytest.approx(expected, rel=0, abs=1e-12)
    assert world.nodes[1].cpu.wakes >= 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"gc_every_s": 1e-6, "gc_pause_s": (0.001,)}, "gc_every_s must be 0 or in"),
        ({"gc_every_s": 4000.0, "gc_pause_s": (0.001,)}, "gc_every_s must be 0 or in"),
        ({"gc_every_s": 0.01, "gc_pause_s": (0.001, -0.001)}, "gc_pause_s must hold pauses"),
        ({"gc_every_s": 0.01, "gc_pause_s": (11.0,)}, "gc_pause_s must hold pauses"),
        ({"gc_every_s": 0.01}, "gc_every_s needs gc_pause_s"),
    ],
)
def test_collector_params_name_the_bad_parameter(changes: dict[str, object], words: str) -> None:
    with pytest.raises(UserError, match=words):
        CpuParams(**changes).validate()  # type: ignore[arg-type]


def test_cpu_pauses_for_the_collector_after_each_stretch_of_work() -> None:
    cpu = Cpu(rng=random.Random(1), gc_every_s=0.001, gc_pause_s=(0.005,))
    assert cpu.run(0.0, 0.0004) == pytest.approx(0.0004)
    assert cpu.run(0.0, 0.0004) == pytest.approx(0.0008)
    # this work crosses the 1 ms mark: the pause falls inside it
    assert cpu.run(0.0, 0.0004) == pytest.approx(0.0012 + 0.005)
    assert (cpu.gc_pauses, cpu.gc_s) == (1, pytest.approx(0.005))
    assert cpu.busy_s == pytest.approx(0.0012 + 0.005)
    # work longer than two stretches: two pauses, and the remainder carries over
    assert cpu.run(1.0, 0.0025) == pytest.approx(1.0 + 0.0025 + 0.010)
    assert cpu.gc_pauses == 3
    assert cpu.work_since_gc == pytest.approx(0.0007)


def test_cpu_without_collector_draws_nothing() -> None:
    rng = random.Random(5)
    cpu = Cpu(rng=rng)
    state = rng.getstate()
    for _ in range(100):
        cpu.run(0.0, 0.01)
    assert cpu.gc_pauses == 0 and rng.getstate() == state


def test_collector_pauses_delay_the_deliveries_they_fall_on() -> None:
    def first_delivery(c: CpuParams) -> tuple[float, int]:
        sim, world = two_nodes(c)
        (mid,) = publish_at(sim, world, 0, [PUBLISH_AT + 0.1])
        return world.recorder.first[mid][1], world.nodes[1].cpu.gc_pauses  # type: ignore[attr-defined]

    plain, none = first_delivery(COSTS)
    # a pause of 3 ms after every 0.1 ms of work: the publish, the write and the
    # read each cross the mark at least once
    paused, n = first_delivery(
        CpuParams(**{**COSTS.__dict__, "gc_every_s": 0.0001, "gc_pause_s": (0.003,)})
    )
    assert none == 0 and n > 0
    assert paused >= plain + 3 * 0.003 - 1e-12
    again, _ = first_delivery(
        CpuParams(**{**COSTS.__dict__, "gc_every_s": 0.0001, "gc_pause_s": (0.003,)})
    )
    assert again == paused
