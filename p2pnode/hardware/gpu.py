"""NVIDIA GPUs through NVML (nvidia-ml-py).

What counts as "no GPUs" and what is an error:

- no `pynvml` package, no NVML shared library (NVML_ERROR_LIBRARY_NOT_FOUND), no
  loaded driver (NVML_ERROR_DRIVER_NOT_LOADED), or a device count of 0: the machine
  has no NVIDIA GPU to sell. That is the normal answer on most machines, never an
  error.
- a device that does not report its max clocks or compute capability
  (NVML_ERROR_NOT_SUPPORTED, e.g. some virtual GPUs): that field is None.
- anything else (a driver/library version mismatch after an upgrade, no permission
  on /dev/nvidia*, a GPU that fell off the bus, ...): `GpuDetectionError`, naming
  the NVML call, the device and NVML's own error. A partial answer would advertise
  a machine without a GPU it has or with the wrong memory, and slots and deals are
  made from this record, so the operator is told to fix the driver instead.

The detector calls only the functions listed in `NVML_CALLS`, through any object
that has them (the `pynvml` module, or a replay of a recorded host in tests).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from p2pnode.errors import LocalError
from p2pnode.hardware.record import GpuInfo

log = logging.getLogger(__name__)

NVML_CALLS: tuple[str, ...] = (
    "nvmlInit",
    "nvmlShutdown",
    "nvmlSystemGetDriverVersion",
    "nvmlDeviceGetCount",
    "nvmlDeviceGetHandleByIndex",
    "nvmlDeviceGetName",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetMaxClockInfo",
    "nvmlDeviceGetCudaComputeCapability",
    "nvmlDeviceGetPciInfo",
)

# NVML return codes (nvml.h); named here so a replay need not import pynvml.
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_MEM = 2
_ABSENT = {
    NVML_ERROR_LIBRARY_NOT_FOUND: "no NVML library (no NVIDIA driver installed)",
    NVML_ERROR_DRIVER_NOT_LOADED: "NVIDIA driver not loaded",
}


class GpuDetectionError(LocalError):
    """NVML is there but failed in a way that leaves the GPU list unknown."""


@dataclass(frozen=True)
class GpuScan:
    gpus: tuple[GpuInfo, ...]
    driver: str  # "" when there is no driver
    status: str  # for people: why there are (no) GPUs


def _code(exc: BaseException) -> int | None:
    value = getattr(exc, "value", None)
    return value if isinstance(value, int) else None


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _is_nvml_error(nvml: Any, exc: BaseException) -> bool:
    error_type = getattr(nvml, "NVMLError", None)
    return isinstance(error_type, type) and isinstance(exc, error_type)


def _fail(call: str, where: str, exc: BaseException) -> GpuDetectionError:
    return GpuDetectionError(
        f"NVML {call}{where} failed: {exc} (NVML error {_code(exc)}); "
        "check the NVIDIA driver (nvidia-smi) — a driver/library mismatch needs a reboot"
    )


def _load_pynvml() -> Any | None:
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


def detect_gpus(nvml: Any | None = None) -> GpuScan:
    """The NVIDIA GPUs of this machine; `nvml` defaults to the real library."""
    if nvml is None:
        nvml = _load_pynvml()
        if nvml is None:
            return GpuScan((), "", "no nvidia-ml-py package")
    try:
        nvml.nvmlInit()
    except Exception as exc:
        if not _is_nvml_error(nvml, exc):
            raise
        code = _code(exc)
        if code in _ABSENT:
            return GpuScan((), "", _ABSENT[code])
        raise _fail("nvmlInit", "", exc) from None
    try:
        return _scan(nvml)
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception as exc:  # the answer is complete; a failed shutdown does not change it
            if not _is_nvml_error(nvml, exc):
                raise
            log.warning("NVML shutdown failed: %s", exc)


def _call(nvml: Any, name: str, where: str, *args: Any, optional: bool = False) -> Any:
    try:
        return getattr(nvml, name)(*args)
    except Exception as exc:
        if not _is_nvml_error(nvml, exc):
            raise
        if optional and _code(exc) == NVML_ERROR_NOT_SUPPORTED:
            return None
        raise _fail(name, where, exc) from None


def _scan(nvml: Any) -> GpuScan:
    driver = _text(_call(nvml, "nvmlSystemGetDriverVersion", ""))
    count = int(_call(nvml, "nvmlDeviceGetCount", ""))
    if count == 0:
        return GpuScan((), driver, "no NVIDIA device")
    gpus = []
    for index in range(count):
        where = f" (device {index})"
        handle = _call(nvml, "nvmlDeviceGetHandleByIndex", where, index)
        memory = _call(nvml, "nvmlDeviceGetMemoryInfo", where, handle)
        clock_graphics = _call(
            nvml, "nvmlDeviceGetMaxClockInfo", where, handle, NVML_CLOCK_GRAPHICS, optional=True
        )
        clock_memory = _call(
            nvml, "nvmlDeviceGetMaxClockInfo", where, handle, NVML_CLOCK_MEM, optional=True
        )
        capability = _call(nvml, "nvmlDeviceGetCudaComputeCapability", where, handle, optional=True)
        pci = _call(nvml, "nvmlDeviceGetPciInfo", where, handle)
        gpus.append(
            GpuInfo(
                index=index,
                name=_text(_call(nvml, "nvmlDeviceGetName", where, handle)),
                uuid=_text(_call(nvml, "nvmlDeviceGetUUID", where, handle)),
                memory_total_bytes=int(memory.total),
                max_clock_graphics_mhz=None if clock_graphics is None else int(clock_graphics),
                max_clock_memory_mhz=None if clock_memory is None else int(clock_memory),
                compute_capability=(
                    None if capability is None else f"{int(capability[0])}.{int(capability[1])}"
                ),
                pci_bus_id=_text(pci.busId),
            )
        )
    noun = "GPU" if count == 1 else "GPUs"
    return GpuScan(tuple(gpus), driver, f"{count} NVIDIA {noun}")
