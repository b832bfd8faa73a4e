"""Detect this machine: CPU (py-cpuinfo + psutil), memory and disk (psutil), GPUs (NVML).

The sources are reached through `HostProbe`, so a recorded host (tests) answers
the same calls the real libraries do and goes through the same parsing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from p2pnode.errors import LocalError
from p2pnode.hardware.gpu import detect_gpus
from p2pnode.hardware.record import CpuInfo, DiskInfo, HardwareRecord, MemoryInfo


class HostProbe(Protocol):
    def cpu_info(self) -> Mapping[str, Any]: ...  # py-cpuinfo's get_cpu_info()
    def cpu_count(self, logical: bool) -> int | None: ...
    def cpu_freq_max_mhz(self) -> float: ...  # 0.0: not reported
    def memory_total(self) -> int: ...
    def disk_usage(self, path: str) -> tuple[int, int]: ...  # (total, free) bytes


class RealHost:
    """This machine, through py-cpuinfo and psutil."""

    def cpu_info(self) -> Mapping[str, Any]:
        import cpuinfo

        info = cpuinfo.get_cpu_info()
        return info if isinstance(info, Mapping) else {}

    def cpu_count(self, logical: bool) -> int | None:
        import psutil

        count = psutil.cpu_count(logical=logical)
        return int(count) if count else None

    def cpu_freq_max_mhz(self) -> float:
        import psutil

        try:
            freq = psutil.cpu_freq()
        except (OSError, NotImplementedError):
            return 0.0
        return float(freq.max) if freq is not None else 0.0

    def memory_total(self) -> int:
        import psutil

        return int(psutil.virtual_memory().total)

    def disk_usage(self, path: str) -> tuple[int, int]:
        import psutil

        usage = psutil.disk_usage(path)
        return int(usage.total), int(usage.free)


def _int_field(info: Mapping[str, Any], key: str) -> int:
    value = info.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def cpu_from_info(
    info: Mapping[str, Any], *, logical: int | None, physical: int | None, freq_max_mhz: float
) -> CpuInfo:
    """Our CPU record from py-cpuinfo's answer and psutil's counts.

    The max clock is psutil's (cpufreq's cpuinfo_max_freq) when the kernel reports
    one; otherwise py-cpuinfo's advertised clock (from the brand string or
    /proc/cpuinfo), which on VMs without cpufreq is the only figure there is.
    """
    logical = logical or _int_field(info, "count") or 1
    physical = physical or logical
    mhz = round(freq_max_mhz) if freq_max_mhz > 0 else 0
    if mhz == 0:
        advertised = info.get("hz_advertised")
        if isinstance(advertised, list | tuple) and advertised and isinstance(advertised[0], int):
            mhz = round(advertised[0] / 1e6)
    flags = info.get("flags")
    return CpuInfo(
        vendor=str(info.get("vendor_id_raw") or "unknown"),
        model=str(info.get("brand_raw") or "unknown"),
        arch=str(info.get("arch") or info.get("arch_string_raw") or "unknown"),
        cores_logical=logical,
        cores_physical=physical,
        max_clock_mhz=mhz,
        cache_l1d_bytes=_int_field(info, "l1_data_cache_size"),
        cache_l1i_bytes=_int_field(info, "l1_instruction_cache_size"),
        cache_l2_bytes=_int_field(info, "l2_cache_size"),
        cache_l3_bytes=_int_field(info, "l3_cache_size"),
        flags=tuple(sorted({str(f) for f in flags})) if isinstance(flags, list | tuple) else (),
    )


def _existing(path: Path) -> Path:
    """The data dir may not exist yet: measure the file system it will be created on."""
    path = path.expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def detect_hardware(
    data_dir: str | Path, *, host: HostProbe | None = None, nvml: Any | None = None
) -> HardwareRecord:
    """The record of this machine; the disk is the one holding `data_dir`.

    Raises GpuDetectionError (a LocalError) when NVML is present but broken, and
    LocalError when the data dir's file system cannot be read.
    """
    host = host or RealHost()
    cpu = cpu_from_info(
        host.cpu_info(),
        logical=host.cpu_count(True),
        physical=host.cpu_count(False),
        freq_max_mhz=host.cpu_freq_max_mhz(),
    )
    disk_path = Path(data_dir).expanduser().absolute()
    try:
        total, free = host.disk_usage(str(_existing(disk_path)))
    except OSError as exc:
        raise LocalError(f"cannot read the disk of {disk_path}: {exc.strerror or exc}") from None
    scan = detect_gpus(nvml)
    return HardwareRecord(
        cpu=cpu,
        memory=MemoryInfo(host.memory_total()),
        disk=DiskInfo(path=str(disk_path), total_bytes=total, free_bytes=free),
        gpus=scan.gpus,
        gpu_driver=scan.driver,
        gpu_status=scan.status,
    )
