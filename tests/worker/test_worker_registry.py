"""The hub's registry of workers and the worker's memberships, in a real SQLite
file: agreements, hours, payouts and deal assignments survive a reopen; earnings
follow the agreement's rate; slots on a remote worker are planned against the
hardware record it signed, never across two workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from p2pnode.market.slots import Capacity, Slot, SlotDoesNotFit, SlotPlanner
from p2pnode.storage import Storage
from p2pnode.worker.membership import MembershipStore
from p2pnode.worker.registry import WorkerRegistry, worker_id
from tests.hardware.test_detect import H200_UUID, h200_record

W1 = "0x" + "11" * 20
W2 = "0x" + "22" * 20
RATE = 3_600 * 10**12  # 10**12 wei per second joined


def _join(reg: WorkerRegistry, worker: str, record_json: str, at: float) -> int:
    return reg.join(
        worker,
        peer_id="12D3KooWpeer",
        addr="/ip4/127.0.0.1/tcp/4002",
        hardware_json=record_json,
        pay_per_hour=RATE,
        payout_period=60,
        at=at,
        request=b"signed join",
        answer=b"signed answer",
    ).id


def test_agreements_payouts_and_assignments_survive_a_reopen(tmp_path: Path) -> None:
    record = json.dumps(h200_record(tmp_path).to_dict(), sort_keys=True)
    db = tmp_path / "node.sqlite3"
    storage = Storage(db)
    reg = WorkerRegistry(storage)
    first = _join(reg, W1, record, at=1_000.0)
    _join(reg, W2, record, at=1_500.0)
    member = reg.active(W1)
    assert member is not None and member.id == first
    assert member.earned(1_000.0 + 1_800) == 1_800 * 10**12  # half an hour
    reg.record_payout(member, 10**15, 2_800.0, "0xabc")
    reg.assign(7, W1, "0xconsumer", 2_000.0)
    reg.leave(W1, 3_000.0)
    storage.close()

    reg = WorkerRegistry(Storage(db))
    gone = reg.latest(W1)
    assert gone is not None and not gone.active and gone.left_at == 3_000.0
    assert gone.paid == 10**15
    assert gone.earned(10**9) == 2_000 * 10**12  # hours stop at the leave
    assert gone.owed(10**9) == 2_000 * 10**12 - 10**15
    assert reg.active(W1) is None and reg.count_active() == 1
    assert reg.last_payout_at(first) == 2_800.0
    assert reg.payouts() == [
        {"agreement": first, "worker": W1, "amount": str(10**15), "at": 2_800.0, "tx": "0xabc"}
    ]
    assert reg.worker_of_deal(7) == W1 and reg.worker_of_deal(8) is None
    assert reg.active(W2) is not None and reg.active(W2).hardware.gpus[0].uuid == H200_UUID  # type: ignore[union-attr]
    # joining again is a new agreement; the old one keeps its record
    again = _join(reg, W1, record, at=4_000.0)
    assert again != first and [m.id for m in reg.members()] == [first, 2, again]
    shown = reg.active(W1).to_json(4_000.0 + 36)  # type: ignore[union-attr]
    assert shown["hours"] == 0.01 and shown["owed"] == str(36 * 10**12) and shown["gpus"] == 1


def test_a_slot_never_spans_two_workers(tmp_path: Path) -> None:
    """Each worker has its own planner on its own record: the H200 of the remote
    worker cannot go into a slot planned on a machine without it."""
    remote = h200_record(tmp_path)
    remote_planner = SlotPlanner(Capacity.of(remote))
    gpu_slot = Slot.create("g1", cpu_cores=4, ram_bytes=2**30, gpu_uuids=[H200_UUID], worker=W1)
    remote_planner.add(gpu_slot)
    no_gpu = Capacity(cpu_cores=4, ram_bytes=2**33, storage_bytes=0, gpus={})
    local = SlotPlanner(no_gpu)
    with pytest.raises(SlotDoesNotFit, match=f"GPU {H200_UUID}: not on this worker"):
        local.add(Slot.create("g2", cpu_cores=1, ram_bytes=2**20, gpu_uuids=[H200_UUID]))
    with pytest.raises(SlotDoesNotFit, match="already in slot g1"):
        remote_planner.add(
            Slot.create("g3", cpu_cores=1, ram_bytes=2**20, gpu_uuids=[H200_UUID], worker=W1)
        )


def test_slot_worker_ids_are_checked() -> None:
    from p2pnode.market.slots import SlotError

    assert (
        Slot.create("a", cpu_cores=1, ram_bytes=1, worker=W1.upper().replace("0X", "0x")).worker
        == W1
    )
    with pytest.raises(SlotError, match="slot worker"):
        Slot.create("a", cpu_cores=1, ram_bytes=1, worker="nobody")
    assert worker_id(bytes.fromhex("ab" * 20)) == "0x" + "ab" * 20


def test_a_workers_membership_survives_a_reopen(tmp_path: Path) -> None:
    db = tmp_path / "node.sqlite3"
    storage = Storage(db)
    store = MembershipStore(storage)
    wallet, owner = b"\x01" * 20, b"\x02" * 20
    store.joined(
        wallet=wallet,
        owner=owner,
        peer_id="12D3KooWhub",
        addr="/ip4/127.0.0.1/tcp/4001",
        pay_per_hour=RATE,
        payout_period=60,
        at=10.0,
        request=b"r",
        answer=b"a",
    )
    store.record_deal(5, owner, b"\x03" * 20, 11.0)
    storage.close()
    store = MembershipStore(Storage(db))
    current = store.current()
    assert current is not None and current.wallet == wallet and current.pay_per_hour == RATE
    assert store.hub_of_deal(5) == owner and store.hub_of_deal(6) is None
    store.left(20.0)
    assert store.current() is None and store.ever_joined(owner)
    assert store.history()[0].left_at == 20.0


def test_paydays_stay_on_the_agreements_grid() -> None:
    """joined_at + k x payout_period, whatever time a payout went out: the worker
    judges each of these paydays, so a late payout must not shift the later ones."""
    import dataclasses

    from p2pnode.worker.registry import Member

    m = Member(1, "0x" + "11" * 20, "peer", "/ip4/127.0.0.1/tcp/1", None, 3600, 4, 100.0, None, 0)  # type: ignore[arg-type]
    assert m.payday_after(100.0) == 104.0  # at the join: the first payday
    assert m.payday_after(103.9) == 104.0
    assert m.payday_after(104.0) == 108.0  # paid on time: the next one
    assert m.payday_after(110.5) == 112.0  # paid 6.5 s late: still the grid, not 114.5
    assert m.payday_after(50.0) == 104.0  # never before the first payday
    assert dataclasses.replace(m, payout_period=0).payday_after(100.0) == 101.0


def test_a_workers_own_scores_travel_with_its_record_and_are_checked(tmp_path: Path) -> None:
    """A worker sends what its hub cannot read off its record (its CPU scores, its
    link speeds) with its join; the hub keeps them with the agreement, for the
    ASKs of the worker's slots, and refuses any other field or a bad value."""
    from p2pnode.hardware.bench import SELF_STATED, scores_from, with_scores
    from p2pnode.hardware.record import HardwareRecord, HardwareRecordError

    record = h200_record(tmp_path)
    scores = {"cpu-sysbench-single": 1234, "cpu-sysbench-multi": 9876, "net-download": 10**8}
    body = with_scores(record, {**scores, "gpu-count": 8})  # not self-stated: left out
    assert body["benchmarks"] == scores and set(scores) <= set(SELF_STATED)
    assert HardwareRecord.from_dict(body) == record and scores_from(body) == scores
    assert scores_from(record.to_dict()) == {}  # a worker that sends none
    reg = WorkerRegistry(Storage(tmp_path / "node.sqlite3"))
    _join(reg, W1, json.dumps(body, sort_keys=True), at=1_000.0)
    member = reg.active(W1)
    assert member is not None and dict(member.scores) == scores
    for bad, field in (
        ({"gpu-mem": 1}, "benchmarks.gpu-mem"),
        ({"net-upload": -1}, "benchmarks.net-upload"),
        ({"net-upload": True}, "benchmarks.net-upload"),
        ({"net-upload": 2**63}, "benchmarks.net-upload"),
    ):
        with pytest.raises(HardwareRecordError, match=field):
            scores_from({**body, "benchmarks": bad})
    with pytest.raises(HardwareRecordError, match="benchmarks: an object"):
        scores_from({**body, "benchmarks": [1]})
