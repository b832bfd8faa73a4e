"""Slots: shares of one worker that never add up to more than the worker has."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossip.orders import BENCHMARK_NAMES, NetworkType, Order, Side, make_benchmarks
from p2pnode.hardware.detect import detect_hardware
from p2pnode.hardware.record import HardwareRecord
from p2pnode.market.slots import (
    Capacity,
    Slot,
    SlotDoesNotFit,
    SlotError,
    SlotPlanner,
    slot_benchmarks,
    slot_gpus,
)
from tests.hardware.replay import FakeNvml, RecordedHost, load

GiB = 2**30
H200 = "GPU-03301946-e2a6-3999-0a3c-83c221cafeba"
OTHER = "GPU-11111111-2222-3333-4444-555555555555"


def two_gpu_host() -> HardwareRecord:
    """The recorded H200 host (16 cores, ~126 GiB) with a second H200 in it."""
    recording = load("nvml-h200.json")
    second = dict(recording["devices"][0], index=1, nvmlDeviceGetUUID=OTHER)
    second["nvmlDeviceGetMemoryInfo"] = {"total": 80 * GiB, "free": 80 * GiB, "used": 0}
    recording["devices"].append(second)
    recording["count"] = 2
    return detect_hardware("/", host=RecordedHost(), nvml=FakeNvml(recording))


def small_capacity() -> Capacity:
    return Capacity(
        cpu_cores=8, ram_bytes=32 * GiB, storage_bytes=100 * GiB, gpus={H200: 141 * GiB}
    )


def slot(slot_id: str = "s1", **kw: object) -> Slot:
    base: dict[str, object] = {"cpu_cores": 2, "ram_bytes": 4 * GiB}
    base.update(kw)
    return Slot.create(slot_id, **base)  # type: ignore[arg-type]


def test_capacity_is_the_workers_record() -> None:
    record = two_gpu_host()
    cap = Capacity.of(record, reserve_cores=2, reserve_ram_bytes=4 * GiB)
    assert cap.cpu_cores == 14
    assert cap.ram_bytes == record.memory.total_bytes - 4 * GiB
    assert cap.storage_bytes == record.disk.free_bytes == 68702085120
    assert cap.gpus == {H200: 150754820096, OTHER: 80 * GiB}


def test_slots_that_fit_are_added_and_removing_frees() -> None:
    planner = SlotPlanner(small_capacity())
    planner.add(slot("a", cpu_cores=4, ram_bytes=16 * GiB, gpu_uuids=[H200]))
    planner.add(slot("b", cpu_cores=4, ram_bytes=16 * GiB, storage_bytes=100 * GiB))
    free = planner.free()
    assert (free.cpu_cores, free.ram_bytes, free.storage_bytes, free.gpus) == (0, 0, 0, frozenset())
    with pytest.raises(SlotDoesNotFit):
        planner.add(slot("c", cpu_cores=1, ram_bytes=1))
    removed = planner.remove("a")
    assert removed.gpu_uuids == (H200,)
    assert planner.free().cpu_cores == 4 and planner.free().gpus == {H200}
    planner.add(slot("c", cpu_cores=4, ram_bytes=16 * GiB, gpu_uuids=[H200]))
    assert [s.slot_id for s in planner.slots] == ["b", "c"]


def test_a_slot_that_does_not_fit_says_exactly_what_is_short() -> None:
    planner = SlotPlanner(small_capacity(), [slot("a", cpu_cores=6, ram_bytes=24 * GiB)])
    with pytest.raises(SlotDoesNotFit) as err:
        planner.add(slot("big", cpu_cores=4, ram_bytes=16 * GiB, storage_bytes=101 * GiB))
    assert str(err.value) == (
        "slot big does not fit: CPU cores: asks 4, 2 free; RAM: asks 16 GiB, 8 GiB free; "
        "storage: asks 101 GiB, 100 GiB free"
    )
    assert [s.resource for s in err.value.shortfalls] == ["CPU cores", "RAM", "storage"]
    assert planner.get("big") is None and planner.used().cpu_cores == 6


@pytest.mark.parametrize(
    ("field", "unit", "resource"),
    [("cpu_cores", 1, "CPU cores"), ("ram_bytes", 1, "RAM"), ("storage_bytes", 1, "storage")],
)
def test_an_exact_fit_is_taken_and_one_unit_more_is_refused(
    field: str, unit: int, resource: str
) -> None:
    cap = small_capacity()
    full = {"cpu_cores": cap.cpu_cores, "ram_bytes": cap.ram_bytes, "storage_bytes": 0}
    full[field] = getattr(cap, field) - 1
    planner = SlotPlanner(cap, [slot("a", **full)])
    with pytest.raises(SlotDoesNotFit) as err:
        planner.add(slot("b", **{"cpu_cores": 1, "ram_bytes": 1, field: 1 + unit}))
    assert resource in {s.resource for s in err.value.shortfalls}
    planner.remove("a")
    full[field] += 1
    planner.add(slot("a", **full))
    assert getattr(planner.free(), field) == 0


def test_a_shortfall_too_small_for_gib_is_given_in_bytes() -> None:
    planner = SlotPlanner(small_capacity())
    with pytest.raises(
        SlotDoesNotFit, match=r"RAM: asks 34359738369 bytes, 34359738368 bytes free"
    ):
        planner.add(slot(ram_bytes=32 * GiB + 1))


def test_a_gpu_is_never_given_twice() -> None:
    planner = SlotPlanner(small_capacity(), [slot("a", gpu_uuids=[H200])])
    with pytest.raises(SlotDoesNotFit, match=f"GPU {H200}: already in slot a"):
        planner.add(slot("b", gpu_uuids=[H200]))
    with pytest.raises(SlotDoesNotFit, match=f"GPU {OTHER}: not on this worker"):
        planner.add(slot("b", gpu_uuids=[OTHER]))
    with pytest.raises(SlotError, match="named twice"):
        slot("b", gpu_uuids=[H200, H200])


def test_ids_are_unique_and_removing_an_unknown_slot_is_an_error() -> None:
    planner = SlotPlanner(small_capacity(), [slot("a")])
    with pytest.raises(SlotError, match="slot a exists already"):
        planner.add(slot("a"))
    with pytest.raises(SlotError, match="no slot 'zzz'"):
        planner.remove("zzz")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"cpu_cores": 0}, "slot cpu_cores = 0: allowed an integer 1..65536"),
        ({"cpu_cores": True}, "slot cpu_cores = True"),
        ({"ram_bytes": 0}, "slot ram_bytes = 0"),
        ({"storage_bytes": -1}, "slot storage_bytes = -1"),
        ({"price_per_hour": -5}, "slot price_per_hour = -5"),
        ({"duration": 11 * 365 * 86400}, "slot duration = 346896000"),
        ({"available_from": 100, "available_until": 50}, "available_until = 50: allowed > "),
        (
            {"duration": 7200, "available_from": 0, "available_until": 3600},
            "slot duration = 7200: allowed <= the availability window (3600 s)",
        ),
        ({"gpu_uuids": [""]}, "gpu_uuids"),
        ({"network": 2}, "slot network 2"),
    ],
)
def test_malformed_slots_name_the_field(kw: dict[str, object], message: str) -> None:
    with pytest.raises(SlotError) as err:
        slot(**kw)
    assert message in str(err.value)


@pytest.mark.parametrize("slot_id", ["", "-x", "a b", "x" * 65, "é"])
def test_slot_ids_are_plain_names(slot_id: str) -> None:
    with pytest.raises(SlotError, match="slot id"):
        slot(slot_id)


def test_a_hand_built_slot_is_checked_on_add() -> None:
    bad = dataclasses.replace(slot(), gpu_uuids=(OTHER, H200))  # not sorted
    with pytest.raises(SlotError, match="sorted"):
        SlotPlanner(small_capacity()).add(bad)


def test_ask_benchmarks_carry_the_share_and_the_workers_scores() -> None:
    record = two_gpu_host()
    worker = {
        "cpu-sysbench-single": 310,
        "cpu-sysbench-multi": 4800,
        "cpu-cores": 16,
        "ram-size": record.memory.total_bytes,
        "net-download": 10**9,
        "net-upload": 10**8,
    }
    s = slot("g", cpu_cores=4, ram_bytes=32 * GiB, storage_bytes=50 * GiB, gpu_uuids=[H200, OTHER])
    values = slot_benchmarks(s, record, worker)
    assert set(values) == set(BENCHMARK_NAMES)
    assert values["cpu-sysbench-single"] == 310
    assert values["cpu-sysbench-multi"] == 1200  # 4 of 16 cores
    assert values["cpu-cores"] == 4
    assert values["ram-size"] == 32 * GiB
    assert values["storage-size"] == 50 * GiB
    assert values["gpu-count"] == 2
    assert values["gpu-mem"] == 80 * GiB  # the smaller GPU: what each GPU offers
    assert (values["net-download"], values["net-upload"]) == (10**9, 10**8)
    assert values["gpu-eth-hashrate"] == 0
    # Order.create's named resources default to 0 and win over a mapping: set the vector
    ask = dataclasses.replace(
        Order.create(
            author=b"\x01" * 20,
            side=Side.ASK,
            price_per_hour=s.price_per_hour,
            duration=s.duration,
            nonce=1,
            valid_from=0,
            valid_until=3600,
            network=NetworkType.OUTBOUND,
        ),
        benchmarks=make_benchmarks(values),
    )
    ask.validate()
    assert ask.cpu_cores == 4 and ask.gpu_count == 2 and ask.ram_bytes == 32 * GiB


def test_slot_gpus_carry_the_recorded_name_and_memory() -> None:
    """The H200 recording's name and memory reach the slot's view, per GPU in UUID
    order; a GPU the record lacks is shown by UUID alone, not refused."""
    record = two_gpu_host()
    s = slot("g", gpu_uuids=[OTHER, H200])
    shown = [g.to_json() for g in slot_gpus(s, record)]
    assert shown == [
        {"uuid": H200, "name": "NVIDIA H200", "memory_bytes": 150754820096},
        {"uuid": OTHER, "name": "NVIDIA H200", "memory_bytes": 80 * GiB},
    ]
    gone = slot_gpus(s, dataclasses.replace(record, gpus=record.gpus[:1]))
    assert [(g.uuid, g.name, g.memory_bytes) for g in gone] == [
        (H200, "NVIDIA H200", 150754820096),
        (OTHER, None, None),
    ]
    assert [g.name for g in slot_gpus(s, None)] == [None, None]
    assert slot_gpus(slot("c"), record) == ()
    # `slot list` shows what the API gives: name and memory, or the bare UUID
    from p2pnode.cli.market import _gpus_cell

    listed = {"gpu_uuids": list(s.gpu_uuids), "gpus": [g.to_json() for g in gone]}
    assert _gpus_cell(listed) == f"NVIDIA H200 140.4GiB, {OTHER}"
    assert _gpus_cell({"gpu_uuids": [], "gpus": []}) == "-"


def test_ask_benchmarks_refuse_a_gpu_the_worker_lacks() -> None:
    record = dataclasses.replace(two_gpu_host(), gpus=())
    with pytest.raises(SlotError, match=f"GPU {H200} is not on this worker"):
        slot_benchmarks(slot(gpu_uuids=[H200]), record, {})
    with pytest.raises(ValueError, match="unknown benchmark"):
        slot_benchmarks(slot(), record, {"cpu-speed": 1})


GPUS = [f"GPU-{i:04d}" for i in range(4)]
add_op = st.tuples(
    st.just("add"),
    st.integers(0, 9),  # slot id
    st.integers(1, 4),  # cores
    st.integers(1, 40).map(lambda g: g * GiB // 4),  # RAM
    st.integers(0, 40).map(lambda g: g * GiB),  # storage
    st.lists(st.sampled_from([*GPUS, "GPU-absent"]), max_size=3, unique=True),
)
remove_op = st.tuples(st.just("remove"), st.integers(0, 9))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(add_op, add_op, remove_op), min_size=10, max_size=50))
def test_no_sequence_of_adds_and_removes_oversubscribes(ops: list[tuple[object, ...]]) -> None:
    cap = Capacity(
        cpu_cores=12, ram_bytes=24 * GiB, storage_bytes=100 * GiB, gpus=dict.fromkeys(GPUS, GiB)
    )
    planner = SlotPlanner(cap)
    model: dict[str, Slot] = {}  # what a brute-force sum says is held
    for op in ops:
        if op[0] == "add":
            _, n, cores, ram, storage, gpus = op
            s = slot(f"s{n}", cpu_cores=cores, ram_bytes=ram, storage_bytes=storage, gpu_uuids=gpus)
            held = list(model.values())
            fits = (
                s.slot_id not in model
                and sum(x.cpu_cores for x in held) + s.cpu_cores <= cap.cpu_cores
                and sum(x.ram_bytes for x in held) + s.ram_bytes <= cap.ram_bytes
                and sum(x.storage_bytes for x in held) + s.storage_bytes <= cap.storage_bytes
                and all(g in cap.gpus for g in s.gpu_uuids)
                and not {g for x in held for g in x.gpu_uuids} & set(s.gpu_uuids)
            )
            try:
                planner.add(s)
            except SlotDoesNotFit as exc:
                assert not fits and exc.shortfalls
            except SlotError:
                assert s.slot_id in model
            else:
                assert fits
                model[s.slot_id] = s
        else:
            sid = f"s{op[1]}"
            if sid in model:
                assert planner.remove(sid) == model.pop(sid)
            else:
                with pytest.raises(SlotError):
                    planner.remove(sid)
        used = planner.used()
        assert used.cpu_cores == sum(x.cpu_cores for x in model.values()) <= cap.cpu_cores
        assert used.ram_bytes == sum(x.ram_bytes for x in model.values()) <= cap.ram_bytes
        assert (
            used.storage_bytes == sum(x.storage_bytes for x in model.values()) <= cap.storage_bytes
        )
        owners = [g for x in model.values() for g in x.gpu_uuids]
        assert len(owners) == len(set(owners)) and set(owners) <= set(cap.gpus)
        assert used.gpus == set(owners)
        assert set(planner.slots) == set(model.values())
