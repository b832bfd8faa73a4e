"""Replays of a recorded host: the NVML calls and the py-cpuinfo/psutil answers the
detector uses, answered from tests/hardware/fixtures/ (a real NVIDIA H200 host).

Errors are pynvml's own exception classes built from NVML return codes, so the
detector meets exactly what the real library raises. `fail` injects an NVML error
code for a call, to test the error policy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


class FakeNvml:
    """Exactly the NVML functions p2pnode.hardware.gpu calls, answered from a recording."""

    NVMLError = pynvml.NVMLError
    _CLOCK_KEYS = {
        pynvml.NVML_CLOCK_GRAPHICS: "max_clock_graphics_mhz",
        pynvml.NVML_CLOCK_SM: "max_clock_sm_mhz",
        pynvml.NVML_CLOCK_MEM: "max_clock_mem_mhz",
        pynvml.NVML_CLOCK_VIDEO: "max_clock_video_mhz",
    }

    def __init__(
        self,
        recording: Mapping[str, Any] | None = None,
        *,
        fail: Mapping[str, int] | None = None,
        count: int | None = None,
    ) -> None:
        self.recording = recording if recording is not None else load("nvml-h200.json")
        self.fail = dict(fail or {})
        self.count = self.recording["count"] if count is None else count
        self.calls: list[str] = []
        self.initialised = False

    def _enter(self, name: str, *, needs_init: bool = True) -> None:
        self.calls.append(name)
        if needs_init and not self.initialised:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)
        if name in self.fail:
            raise pynvml.NVMLError(self.fail[name])

    def _device(self, handle: Any) -> dict[str, Any]:
        return self.recording["devices"][handle.index]

    def nvmlInit(self) -> None:
        self._enter("nvmlInit", needs_init=False)
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        self.initialised = False

    def nvmlSystemGetDriverVersion(self) -> str:
        self._enter("nvmlSystemGetDriverVersion")
        return self.recording["driver"]

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return self.count

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        self._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < self.count:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return SimpleNamespace(index=index)

    def nvmlDeviceGetName(self, handle: Any) -> str:
        self._enter("nvmlDeviceGetName")
        return self._device(handle)["nvmlDeviceGetName"]

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        self._enter("nvmlDeviceGetUUID")
        return self._device(handle)["nvmlDeviceGetUUID"]

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any:
        self._enter("nvmlDeviceGetMemoryInfo")
        return SimpleNamespace(**self._device(handle)["nvmlDeviceGetMemoryInfo"])

    def nvmlDeviceGetMaxClockInfo(self, handle: Any, clock_type: int) -> int:
        self._enter("nvmlDeviceGetMaxClockInfo")
        return self._device(handle)[self._CLOCK_KEYS[clock_type]]

    def nvmlDeviceGetCudaComputeCapability(self, handle: Any) -> tuple[int, int]:
        self._enter("nvmlDeviceGetCudaComputeCapability")
        major, minor = self._device(handle)["nvmlDeviceGetCudaComputeCapability"]
        return major, minor

    def nvmlDeviceGetPciInfo(self, handle: Any) -> Any:
        self._enter("nvmlDeviceGetPciInfo")
        return SimpleNamespace(**self._device(handle)["nvmlDeviceGetPciInfo"])


class RecordedHost:
    """py-cpuinfo's and psutil's answers on the recorded host (a HostProbe)."""

    def __init__(self, recording: Mapping[str, Any] | None = None) -> None:
        self.recording = recording if recording is not None else load("cpu-h200-host.json")
        self.disk_paths: list[str] = []

    def cpu_info(self) -> Mapping[str, Any]:
        return self.recording["cpuinfo"]

    def cpu_count(self, logical: bool) -> int | None:
        return self.recording["cores_logical" if logical else "cores_physical"]

    def cpu_freq_max_mhz(self) -> float:
        return float(self.recording["freq"]["max"])

    def memory_total(self) -> int:
        return self.recording["mem_total"]

    def disk_usage(self, path: str) -> tuple[int, int]:
        self.disk_paths.append(path)
        disk = self.recording["disk_root"]
        return disk["total"], disk["free"]
