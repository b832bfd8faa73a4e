"""The event engine: order, ties, bounds, progress, seeded streams."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable

import pytest

from p2pnode.errors import UserError
from simulations.engine import EngineParams, Simulator


def test_events_run_in_time_order_and_ties_in_schedule_order() -> None:
    sim = Simulator()
    seen: list[tuple[float, str]] = []
    for label, at in [("c", 2.0), ("a", 1.0), ("b1", 1.5), ("b2", 1.5), ("b3", 1.5)]:
        sim.schedule(at, lambda label=label: seen.append((sim.now, label)))
    sim.run()
    assert seen == [(1.0, "a"), (1.5, "b1"), (1.5, "b2"), (1.5, "b3"), (2.0, "c")]


def test_events_scheduled_while_running_and_in_the_past_run_now() -> None:
    sim = Simulator()
    seen: list[tuple[float, str]] = []

    def first() -> None:
        seen.append((sim.now, "first"))
        sim.schedule(0.0, lambda: seen.append((sim.now, "past")))
        sim.call_later(0.5, lambda: seen.append((sim.now, "later")))

    sim.schedule(1.0, first)
    sim.run()
    assert seen == [(1.0, "first"), (1.0, "past"), (1.5, "later")]


class _OneHeap:
    """The order the engine must reproduce: one heap of (time, seq)."""

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0

    def schedule(self, at: float, fn: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (max(at, self.now), self._seq, fn))

    def run(self) -> None:
        while self._heap:
            self.now, _, fn = heapq.heappop(self._heap)
            fn()


@pytest.mark.parametrize("seed", range(5))
def test_order_is_that_of_one_heap_of_time_and_seq(seed: int) -> None:
    """Events crowd a few slots, at equal times, and schedule more while they run:
    into the slot being run (before, at and after its next event), into later
    slots and into the past. The run order equals one heap's, event for event."""

    def drive(engine: Simulator | _OneHeap) -> list[int]:
        rng = random.Random(seed)
        seen: list[int] = []
        ids = iter(range(10**6))

        def event(eid: int, depth: int) -> None:
            seen.append(eid)
            for _ in range(rng.randrange(3) if depth < 4 else 0):
                # same time, within the slot (1/1024 s), a few slots on, the past
                delay = rng.choice([0.0, 0.0001, 0.0004, 0.003, -0.01])
                child = next(ids)
                engine.schedule(engine.now + delay, lambda c=child, d=depth: event(c, d + 1))

        for _ in range(300):
            at = rng.choice([0.01, 0.0105, 0.0105, 0.0112]) + rng.randrange(4) / 1024
            eid = next(ids)
            engine.schedule(at, lambda e=eid: event(e, 0))
        engine.run()
        return seen

    ours, reference = drive(Simulator()), drive(_OneHeap())
    assert len(ours) > 600
    assert ours == reference


def test_a_run_from_inside_an_event_is_refused_and_the_outer_run_goes_on() -> None:
    sim = Simulator()
    seen: list[str] = []
    errors: list[str] = []

    def nested() -> None:
        try:
            sim.run()
        except UserError as e:
            errors.append(str(e))
        seen.append("nested")

    sim.schedule(1.0, nested)
    sim.schedule(1.0, lambda: seen.append("after"))
    sim.run()
    assert seen == ["nested", "after"]
    assert errors and "inside an event" in errors[0]
    sim.schedule(2.0, lambda: seen.append("again"))
    sim.run()
    assert seen[-1] == "again"


def test_run_until_stops_at_the_bound_and_keeps_later_events() -> None:
    sim = Simulator()
    seen: list[float] = []
    for at in (1.0, 2.0, 3.0):
        sim.schedule(at, lambda: seen.append(sim.now))
    sim.run(until=2.0)
    assert seen == [1.0, 2.0] and sim.now == 2.0 and sim.pending == 1
    sim.run(until=10.0)
    assert seen == [1.0, 2.0, 3.0] and sim.now == 10.0


def test_stop_and_max_events() -> None:
    sim = Simulator()
    seen: list[int] = []
    for i in range(5):
        sim.schedule(float(i), lambda i=i: (seen.append(i), i == 1 and sim.stop()))
    sim.run()
    assert seen == [0, 1]
    sim.run(max_events=2)
    assert seen == [0, 1, 2, 3]


def test_progress_callback_sees_virtual_time_and_event_count() -> None:
    calls: list[tuple[float, int]] = []
    sim = Simulator(EngineParams(progress_every=2), progress=lambda t, n: calls.append((t, n)))
    for i in range(5):
        sim.schedule(float(i), lambda: None)
    sim.run()
    assert calls == [(1.0, 2), (3.0, 4), (4.0, 5)]


def test_child_streams_depend_on_seed_and_label_only() -> None:
    a, b = Simulator(EngineParams(seed=7)), Simulator(EngineParams(seed=7))
    a.rng.random()  # drawing from the main stream does not shift a child stream
    assert a.child_rng("x").random() == b.child_rng("x").random()
    assert a.child_rng("x").random() != a.child_rng("y").random()
    assert Simulator(EngineParams(seed=8)).child_rng("x").random() != b.child_rng("x").random()


@pytest.mark.parametrize(
    ("params", "name"),
    [(EngineParams(seed=-1), "seed"), (EngineParams(progress_every=0), "progress_every")],
)
def test_bad_params_name_the_parameter(params: EngineParams, name: str) -> None:
    with pytest.raises(UserError, match=name):
        Simulator(params)


def test_run_raises_the_gc_threshold_only_while_running() -> None:
    import gc

    before = gc.get_threshold()
    seen: list[int] = []
    sim = Simulator(EngineParams(collect_during_run=True, gc_gen0_threshold=12_345))
    sim.schedule(1.0, lambda: seen.append(gc.get_threshold()[0]))
    sim.run()
    assert seen == [12_345] and gc.get_threshold() == before


def test_run_turns_the_collector_off_only_while_running() -> None:
    import gc

    seen: list[bool] = []
    sim = Simulator()
    sim.schedule(1.0, lambda: seen.append(gc.isenabled()))
    assert gc.isenabled()
    sim.run()
    assert seen == [False] and gc.isenabled()
    gc.disable()  # a caller that had it off keeps it off
    try:
        sim.schedule(2.0, lambda: seen.append(gc.isenabled()))
        sim.run()
        assert seen == [False, False] and not gc.isenabled()
    finally:
        gc.enable()


def test_what_a_run_keeps_is_collectable_after_it() -> None:
    """Objects made while the collector was off are handed back to it: a cycle
    made during the run is found by the next full collection."""
    import gc
    import weakref

    class Node:
        other: object = None

    refs: list[weakref.ref[Node]] = []

    def make_cycle() -> None:
        a, b = Node(), Node()
        a.other, b.other = b, a
        refs.append(weakref.ref(a))

    sim = Simulator()
    sim.schedule(1.0, make_cycle)
    sim.run()
    assert refs[0]() is not None  # not collected while the run went
    gc.collect()
    assert refs[0]() is None
