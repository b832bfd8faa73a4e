"""Slots: shares of one worker's machine that a supplier sells, and the check that
they never add up to more than the machine has.

A slot takes whole CPU cores, bytes of RAM and storage, and named GPUs (by UUID,
so a GPU is either in a slot or not — no GPU is shared) from one worker's hardware
record; a slot never spans two workers. `SlotPlanner` holds the slots of one worker
and refuses one that does not fit, saying what is short, e.g.
"RAM: asks 16 GiB, 8 GiB free". Pure: no I/O, no clock; the caller persists
the slots and places the ASKs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gossip.orders import (
    BENCHMARK_NAMES,
    ORDER_MAX_DURATION_SECONDS,
    NetworkType,
)
from p2pnode.errors import UserError
from p2pnode.hardware.record import HardwareRecord

UINT256_MAX = 2**256 - 1
SLOT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
WORKER_ID = re.compile(r"0x[0-9a-f]{40}\Z")
LOCAL_WORKER = ""  # the hub's own machine


class SlotError(UserError):
    """The operator asked for a slot that is malformed or cannot be given."""


class SlotDoesNotFit(SlotError):
    """The slot asks for more than the worker has free; `shortfalls` says what."""

    def __init__(self, slot_id: str, shortfalls: tuple[Shortfall, ...]) -> None:
        self.shortfalls = shortfalls
        super().__init__(f"slot {slot_id} does not fit: " + "; ".join(str(s) for s in shortfalls))


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f}".rstrip("0").rstrip(".") + " GiB"


def _asks_free(asked: int, free: int) -> str:
    """ "asks 16 GiB, 8 GiB free"; in bytes when GiB would round the difference away."""
    a, f = _gib(asked), _gib(free)
    if a == f:
        a, f = f"{asked} bytes", f"{free} bytes"
    return f"asks {a}, {f} free"


@dataclass(frozen=True)
class Shortfall:
    """One resource a slot asks for that the worker cannot give."""

    resource: str  # "CPU cores", "RAM", "storage", "GPU <uuid>"
    detail: str  # "asks 16.0 GiB, 8.0 GiB free"

    def __str__(self) -> str:
        return f"{self.resource}: {self.detail}"


@dataclass(frozen=True)
class Slot:
    slot_id: str
    cpu_cores: int
    ram_bytes: int
    storage_bytes: int
    gpu_uuids: tuple[str, ...]  # sorted, unique
    network: NetworkType
    price_per_hour: int  # token base units per hour, as in the ASK
    duration: int  # longest deal the slot takes, seconds (the ASK's duration); 0 = spot
    available_from: int = 0  # unix seconds the slot is on offer from; 0: now
    available_until: int = 0  # unix seconds it is on offer until; 0: no end
    worker: str = LOCAL_WORKER  # whose machine: "" this node's, else a joined worker's account

    def validate(self) -> None:
        if not isinstance(self.slot_id, str) or not SLOT_ID.match(self.slot_id):
            raise SlotError(
                f"slot id {self.slot_id!r}: allowed 1..64 letters, digits, '.', '_', '-'"
            )
        if not isinstance(self.worker, str) or (
            self.worker != LOCAL_WORKER and not WORKER_ID.match(self.worker)
        ):
            raise SlotError(
                f"slot worker {self.worker!r}: allowed empty (this node) or a worker's "
                "0x address in lower case"
            )
        _int_in("cpu_cores", self.cpu_cores, 1, 2**16)
        _int_in("ram_bytes", self.ram_bytes, 1, 2**64 - 1)
        _int_in("storage_bytes", self.storage_bytes, 0, 2**64 - 1)
        if not isinstance(self.gpu_uuids, tuple) or not all(
            isinstance(u, str) and 0 < len(u) <= 96 for u in self.gpu_uuids
        ):
            raise SlotError("slot gpu_uuids: a tuple of GPU UUID strings expected")
        if list(self.gpu_uuids) != sorted(set(self.gpu_uuids)):
            raise SlotError("slot gpu_uuids: each GPU once, sorted")
        if not isinstance(self.network, NetworkType):
            raise SlotError(f"slot network {self.network!r}: allowed 0 (none), 1 (out), 3 (in/out)")
        _int_in("price_per_hour", self.price_per_hour, 0, UINT256_MAX)
        _int_in("duration", self.duration, 0, ORDER_MAX_DURATION_SECONDS)
        _int_in("available_from", self.available_from, 0, 2**64 - 1)
        _int_in("available_until", self.available_until, 0, 2**64 - 1)
        if self.available_until:
            if self.available_until <= self.available_from:
                raise SlotError(
                    f"slot available_until = {self.available_until}: allowed > "
                    f"available_from ({self.available_from}) or 0 (no end)"
                )
            if self.duration > self.available_until - self.available_from:
                raise SlotError(
                    f"slot duration = {self.duration}: allowed <= the availability window "
                    f"({self.available_until - self.available_from} s)"
                )

    @classmethod
    def create(
        cls,
        slot_id: str,
        *,
        cpu_cores: int,
        ram_bytes: int,
        storage_bytes: int = 0,
        gpu_uuids: Iterable[str] = (),
        network: NetworkType = NetworkType.NONE,
        price_per_hour: int = 0,
        duration: int = 0,
        available_from: int = 0,
        available_until: int = 0,
        worker: str = LOCAL_WORKER,
    ) -> Slot:
        uuids = list(gpu_uuids)
        if len(set(uuids)) != len(uuids):
            raise SlotError("slot gpu_uuids: a GPU is named twice")
        slot = cls(
            slot_id=slot_id,
            cpu_cores=cpu_cores,
            ram_bytes=ram_bytes,
            storage_bytes=storage_bytes,
            gpu_uuids=tuple(sorted(uuids)),
            network=network,
            price_per_hour=price_per_hour,
            duration=duration,
            available_from=available_from,
            available_until=available_until,
            worker=worker.lower(),
        )
        slot.validate()
        return slot


def _int_in(name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise SlotError(f"slot {name} = {value!r}: allowed an integer {lo}..{hi}")


@dataclass(frozen=True)
class Capacity:
    """What one worker can give to slots in total."""

    cpu_cores: int
    ram_bytes: int
    storage_bytes: int
    gpus: Mapping[str, int]  # UUID -> memory bytes

    @classmethod
    def of(
        cls, record: HardwareRecord, *, reserve_cores: int = 0, reserve_ram_bytes: int = 0
    ) -> Capacity:
        """The worker's logical cores, RAM, free disk of the data dir and GPUs, less what
        the operator keeps for the machine itself."""
        return cls(
            cpu_cores=max(record.cpu.cores_logical - reserve_cores, 0),
            ram_bytes=max(record.memory.total_bytes - reserve_ram_bytes, 0),
            storage_bytes=record.disk.free_bytes,
            gpus={g.uuid: g.memory_total_bytes for g in record.gpus},
        )


@dataclass(frozen=True)
class Usage:
    cpu_cores: int
    ram_bytes: int
    storage_bytes: int
    gpus: frozenset[str]


class SlotPlanner:
    """The slots of one worker; every change keeps their sum within its capacity."""

    def __init__(self, capacity: Capacity, slots: Iterable[Slot] = ()) -> None:
        self.capacity = capacity
        self._slots: dict[str, Slot] = {}
        self._gpu_owner: dict[str, str] = {}
        self._cores = 0
        self._ram = 0
        self._storage = 0
        for slot in slots:
            self.add(slot)

    @property
    def slots(self) -> tuple[Slot, ...]:
        return tuple(self._slots.values())

    def get(self, slot_id: str) -> Slot | None:
        return self._slots.get(slot_id)

    def used(self) -> Usage:
        return Usage(self._cores, self._ram, self._storage, frozenset(self._gpu_owner))

    def free(self) -> Usage:
        return Usage(
            self.capacity.cpu_cores - self._cores,
            self.capacity.ram_bytes - self._ram,
            self.capacity.storage_bytes - self._storage,
            frozenset(self.capacity.gpus) - frozenset(self._gpu_owner),
        )

    def shortfalls(self, slot: Slot) -> tuple[Shortfall, ...]:
        """Everything that keeps `slot` from fitting now; empty when it fits."""
        free = self.free()
        out: list[Shortfall] = []
        if slot.cpu_cores > free.cpu_cores:
            out.append(Shortfall("CPU cores", f"asks {slot.cpu_cores}, {free.cpu_cores} free"))
        if slot.ram_bytes > free.ram_bytes:
            out.append(Shortfall("RAM", _asks_free(slot.ram_bytes, free.ram_bytes)))
        if slot.storage_bytes > free.storage_bytes:
            out.append(Shortfall("storage", _asks_free(slot.storage_bytes, free.storage_bytes)))
        for uuid in slot.gpu_uuids:
            if uuid not in self.capacity.gpus:
                out.append(Shortfall(f"GPU {uuid}", "not on this worker"))
            elif uuid in self._gpu_owner:
                out.append(Shortfall(f"GPU {uuid}", f"already in slot {self._gpu_owner[uuid]}"))
        return tuple(out)

    def add(self, slot: Slot) -> None:
        """Take the slot's share, or raise SlotDoesNotFit naming every shortfall."""
        slot.validate()
        if slot.slot_id in self._slots:
            raise SlotError(f"slot {slot.slot_id} exists already")
        short = self.shortfalls(slot)
        if short:
            raise SlotDoesNotFit(slot.slot_id, short)
        self._slots[slot.slot_id] = slot
        self._cores += slot.cpu_cores
        self._ram += slot.ram_bytes
        self._storage += slot.storage_bytes
        for uuid in slot.gpu_uuids:
            self._gpu_owner[uuid] = slot.slot_id

    def remove(self, slot_id: str) -> Slot:
        """Give the slot's share back."""
        slot = self._slots.pop(slot_id, None)
        if slot is None:
            raise SlotError(f"no slot {slot_id!r}")
        self._cores -= slot.cpu_cores
        self._ram -= slot.ram_bytes
        self._storage -= slot.storage_bytes
        for uuid in slot.gpu_uuids:
            del self._gpu_owner[uuid]
        return slot


@dataclass(frozen=True)
class SlotGpu:
    """One of a slot's GPUs as the worker's hardware record names it. Shown with the
    slot (API, `slot list`) so a buyer's and an operator's view say which card; the
    signed ASK carries only `gpu-count` and `gpu-mem` (the order format has no name)."""

    uuid: str
    name: str | None  # None: the GPU is not in the worker's record (any more)
    memory_bytes: int | None

    def to_json(self) -> dict[str, object]:
        return {"uuid": self.uuid, "name": self.name, "memory_bytes": self.memory_bytes}


def slot_gpus(slot: Slot, record: HardwareRecord | None) -> tuple[SlotGpu, ...]:
    """The slot's GPUs with the name and memory the worker's record gives each; a GPU
    the record lacks (or no record) is listed by UUID alone rather than refused: a
    listing must show every slot, also one whose card went away."""
    known = {g.uuid: g for g in record.gpus} if record is not None else {}
    out = []
    for uuid in slot.gpu_uuids:
        g = known.get(uuid)
        out.append(SlotGpu(uuid, g.name, g.memory_total_bytes) if g else SlotGpu(uuid, None, None))
    return tuple(out)


def slot_benchmarks(
    slot: Slot, record: HardwareRecord, worker: Mapping[str, int]
) -> dict[str, int]:
    """The benchmark fields an ASK for `slot` carries, by SONM name.

    Resources are the slot's share: its cores, RAM, storage, its GPUs' count and the
    smallest of their memories. Scores are the worker's measurements (`worker`, as
    `p2pnode.hardware.bench.benchmark_values` gives them): single-core as measured,
    multi-core scaled to the slot's share of the cores (the slot cannot use the
    others), the network as configured for the worker. Fields the worker did not
    measure stay 0: an ASK offers nothing it cannot show.
    """
    memories = {g.uuid: g.memory_total_bytes for g in record.gpus}
    missing = [u for u in slot.gpu_uuids if u not in memories]
    if missing:
        raise SlotError(f"slot {slot.slot_id}: GPU {missing[0]} is not on this worker")
    unknown = set(worker) - set(BENCHMARK_NAMES)
    if unknown:
        raise ValueError(f"unknown benchmark names: {sorted(unknown)}")
    cores = max(record.cpu.cores_logical, 1)
    values = dict.fromkeys(BENCHMARK_NAMES, 0)
    values.update(
        {
            "cpu-sysbench-single": worker.get("cpu-sysbench-single", 0),
            "cpu-sysbench-multi": worker.get("cpu-sysbench-multi", 0)
            * min(slot.cpu_cores, cores)
            // cores,
            "cpu-cores": slot.cpu_cores,
            "ram-size": slot.ram_bytes,
            "storage-size": slot.storage_bytes,
            "gpu-count": len(slot.gpu_uuids),
            "gpu-mem": min((memories[u] for u in slot.gpu_uuids), default=0),
            "net-download": worker.get("net-download", 0),
            "net-upload": worker.get("net-upload", 0),
        }
    )
    return values
