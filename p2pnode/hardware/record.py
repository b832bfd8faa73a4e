"""The hardware record: one worker's machine as detected, frozen and JSON-serialisable.

The record is what a supplier sells from (slots are shares of it) and what its
benchmark cache is keyed by. `fingerprint()` hashes only what identifies the
hardware — not free disk space, clocks that some kernels report as the current
frequency, or the driver version — so the benchmarks are re-run when a part
changes, not on every start.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

RECORD_VERSION = 1


class HardwareRecordError(ValueError):
    """A serialised record is malformed; the message names the field."""


@dataclass(frozen=True)
class CpuInfo:
    vendor: str  # "GenuineIntel", "AuthenticAMD", ...
    model: str  # brand string, e.g. "Intel(R) Xeon(R) Processor"
    arch: str  # "X86_64", "ARM_8", ...
    cores_logical: int
    cores_physical: int
    max_clock_mhz: int  # 0: not reported
    cache_l1d_bytes: int  # 0: not reported (per core on most CPUs, as py-cpuinfo gives it)
    cache_l1i_bytes: int
    cache_l2_bytes: int
    cache_l3_bytes: int
    flags: tuple[str, ...]  # sorted, unique


@dataclass(frozen=True)
class MemoryInfo:
    total_bytes: int


@dataclass(frozen=True)
class DiskInfo:
    path: str  # the data dir whose file system this is
    total_bytes: int
    free_bytes: int  # what slots can be given; not part of the fingerprint


@dataclass(frozen=True)
class GpuInfo:
    index: int  # NVML index on this machine
    name: str
    uuid: str  # "GPU-…"; how slots name a GPU
    memory_total_bytes: int
    max_clock_graphics_mhz: int | None  # None: the device does not report it
    max_clock_memory_mhz: int | None
    compute_capability: str | None  # CUDA compute capability "major.minor"
    pci_bus_id: str


@dataclass(frozen=True)
class HardwareRecord:
    cpu: CpuInfo
    memory: MemoryInfo
    disk: DiskInfo
    gpus: tuple[GpuInfo, ...]
    gpu_driver: str  # NVIDIA driver version; "" without one
    gpu_status: str  # why there are (no) GPUs, for people: "3 NVIDIA GPUs", "no NVML library", …

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["cpu"]["flags"] = list(self.cpu.flags)
        out["gpus"] = [dataclasses.asdict(g) for g in self.gpus]
        out["version"] = RECORD_VERSION
        out["fingerprint"] = self.fingerprint()
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    def fingerprint(self) -> str:
        """sha256 (hex) of the parts that identify this machine's hardware."""
        cpu = dataclasses.asdict(self.cpu)
        del cpu["max_clock_mhz"]
        cpu["flags"] = list(self.cpu.flags)
        identity = {
            "version": RECORD_VERSION,
            "cpu": cpu,
            "memory": self.memory.total_bytes,
            "disk": [self.disk.path, self.disk.total_bytes],
            "gpus": [
                [g.uuid, g.name, g.memory_total_bytes, g.compute_capability] for g in self.gpus
            ],
        }
        blob = json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HardwareRecord:
        """The inverse of `to_dict`, checking every field's type (records travel between
        a worker and its hub)."""
        if not isinstance(data, Mapping):
            raise HardwareRecordError("record: an object expected")
        if data.get("version", RECORD_VERSION) != RECORD_VERSION:
            raise HardwareRecordError(f"version: {RECORD_VERSION} expected")
        cpu = _section(data, "cpu")
        flags = cpu.get("flags")
        if not isinstance(flags, list | tuple) or not all(isinstance(f, str) for f in flags):
            raise HardwareRecordError("cpu.flags: a list of strings expected")
        gpus_raw = data.get("gpus")
        if not isinstance(gpus_raw, list | tuple):
            raise HardwareRecordError("gpus: a list expected")
        record = cls(
            cpu=CpuInfo(
                vendor=_str(cpu, "cpu.vendor"),
                model=_str(cpu, "cpu.model"),
                arch=_str(cpu, "cpu.arch"),
                cores_logical=_int(cpu, "cpu.cores_logical"),
                cores_physical=_int(cpu, "cpu.cores_physical"),
                max_clock_mhz=_int(cpu, "cpu.max_clock_mhz"),
                cache_l1d_bytes=_int(cpu, "cpu.cache_l1d_bytes"),
                cache_l1i_bytes=_int(cpu, "cpu.cache_l1i_bytes"),
                cache_l2_bytes=_int(cpu, "cpu.cache_l2_bytes"),
                cache_l3_bytes=_int(cpu, "cpu.cache_l3_bytes"),
                flags=tuple(sorted(set(flags))),
            ),
            memory=MemoryInfo(_int(_section(data, "memory"), "memory.total_bytes")),
            disk=DiskInfo(
                path=_str(_section(data, "disk"), "disk.path"),
                total_bytes=_int(_section(data, "disk"), "disk.total_bytes"),
                free_bytes=_int(_section(data, "disk"), "disk.free_bytes"),
            ),
            gpus=tuple(_gpu(g, f"gpus[{i}]") for i, g in enumerate(gpus_raw)),
            gpu_driver=_str(data, "gpu_driver"),
            gpu_status=_str(data, "gpu_status"),
        )
        uuids = [g.uuid for g in record.gpus]
        if len(set(uuids)) != len(uuids):
            raise HardwareRecordError("gpus: UUIDs must be unique")
        claimed = data.get("fingerprint")
        if claimed is not None and claimed != record.fingerprint():
            raise HardwareRecordError("fingerprint: does not match the record's contents")
        return record


def _section(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name)
    if not isinstance(value, Mapping):
        raise HardwareRecordError(f"{name}: an object expected")
    return value


def _leaf(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(_leaf(key))
    if not isinstance(value, str) or len(value) > 256:
        raise HardwareRecordError(f"{key}: a string of at most 256 characters expected")
    return value


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data.get(_leaf(key))
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        raise HardwareRecordError(f"{key}: an integer in 0..2^64-1 expected")
    return value


def _opt_int(data: Mapping[str, Any], key: str) -> int | None:
    return None if data.get(_leaf(key)) is None else _int(data, key)


def _gpu(raw: Any, where: str) -> GpuInfo:
    if not isinstance(raw, Mapping):
        raise HardwareRecordError(f"{where}: an object expected")
    cc = raw.get("compute_capability")
    if cc is not None and not isinstance(cc, str):
        raise HardwareRecordError(f"{where}.compute_capability: a string or null expected")
    return GpuInfo(
        index=_int(raw, f"{where}.index"),
        name=_str(raw, f"{where}.name"),
        uuid=_str(raw, f"{where}.uuid"),
        memory_total_bytes=_int(raw, f"{where}.memory_total_bytes"),
        max_clock_graphics_mhz=_opt_int(raw, f"{where}.max_clock_graphics_mhz"),
        max_clock_memory_mhz=_opt_int(raw, f"{where}.max_clock_memory_mhz"),
        compute_capability=cc,
        pci_bus_id=_str(raw, f"{where}.pci_bus_id"),
    )
