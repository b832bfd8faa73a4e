"""The detector against a real H200 host's recorded answers, and against this machine."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import psutil
import pynvml
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pnode.hardware import gpu
from p2pnode.hardware.detect import cpu_from_info, detect_hardware
from p2pnode.hardware.gpu import NVML_CALLS, GpuDetectionError, detect_gpus
from p2pnode.hardware.record import GpuInfo, HardwareRecord, HardwareRecordError
from tests.hardware.replay import FakeNvml, RecordedHost, load

H200_UUID = "GPU-03301946-e2a6-3999-0a3c-83c221cafeba"


def h200_record(tmp_path: Path, nvml: FakeNvml | None = None) -> HardwareRecord:
    return detect_hardware(tmp_path / "data", host=RecordedHost(), nvml=nvml or FakeNvml())


def test_recorded_h200_host_is_read_field_by_field(tmp_path: Path) -> None:
    nvml = FakeNvml()
    host = RecordedHost()
    record = detect_hardware(tmp_path / "not-yet", host=host, nvml=nvml)
    cpu_rec = load("cpu-h200-host.json")["cpuinfo"]
    assert record.cpu.vendor == "GenuineIntel"
    assert record.cpu.model == "Intel(R) Xeon(R) Processor"
    assert record.cpu.arch == "X86_64"
    assert (record.cpu.cores_logical, record.cpu.cores_physical) == (16, 16)
    assert record.cpu.max_clock_mhz == 2100  # psutil reports max 0 there: the advertised clock
    assert record.cpu.cache_l1d_bytes == 786432
    assert record.cpu.cache_l1i_bytes == 524288
    assert record.cpu.cache_l2_bytes == 33554432
    assert record.cpu.cache_l3_bytes == 314572800
    assert record.cpu.flags == tuple(sorted(set(cpu_rec["flags"])))
    assert "avx512f" in record.cpu.flags and "amx_tile" in record.cpu.flags
    assert record.memory.total_bytes == 135148564480
    assert (record.disk.total_bytes, record.disk.free_bytes) == (270553174016, 68702085120)
    # the data dir does not exist yet: its nearest existing parent's disk is measured
    assert host.disk_paths == [str(tmp_path)]
    assert record.disk.path == str(tmp_path / "not-yet")
    assert record.gpus == (
        GpuInfo(
            index=0,
            name="NVIDIA H200",
            uuid=H200_UUID,
            memory_total_bytes=150754820096,
            max_clock_graphics_mhz=1980,
            max_clock_memory_mhz=3201,
            compute_capability="9.0",
            pci_bus_id="00000000:00:06.0",
        ),
    )
    assert record.gpu_driver == "580.159.04"
    assert record.gpu_status == "1 NVIDIA GPU"
    assert set(nvml.calls) <= set(NVML_CALLS)
    assert nvml.calls[0] == "nvmlInit" and nvml.calls[-1] == "nvmlShutdown"
    assert not nvml.initialised


def test_our_nvml_constants_are_the_librarys() -> None:
    assert gpu.NVML_ERROR_NOT_SUPPORTED == pynvml.NVML_ERROR_NOT_SUPPORTED
    assert gpu.NVML_ERROR_DRIVER_NOT_LOADED == pynvml.NVML_ERROR_DRIVER_NOT_LOADED
    assert gpu.NVML_ERROR_LIBRARY_NOT_FOUND == pynvml.NVML_ERROR_LIBRARY_NOT_FOUND
    assert gpu.NVML_CLOCK_GRAPHICS == pynvml.NVML_CLOCK_GRAPHICS
    assert gpu.NVML_CLOCK_MEM == pynvml.NVML_CLOCK_MEM
    for name in NVML_CALLS:
        assert callable(getattr(pynvml, name)), name


def test_real_library_on_this_machine_answers_without_raising() -> None:
    """On a machine without a driver this is "no GPUs"; with one, the same devices NVML lists."""
    scan = detect_gpus()
    try:
        pynvml.nvmlInit()
    except (pynvml.NVMLError_LibraryNotFound, pynvml.NVMLError_DriverNotLoaded):
        assert scan.gpus == ()
        assert scan.driver == ""
        assert scan.status in gpu._ABSENT.values()
        return
    try:
        count = pynvml.nvmlDeviceGetCount()
        uuids = [
            gpu._text(pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(i)))
            for i in range(count)
        ]
    finally:
        pynvml.nvmlShutdown()
    assert [g.uuid for g in scan.gpus] == uuids
    for g in scan.gpus:
        assert g.uuid.startswith(("GPU-", "MIG-")) and g.memory_total_bytes > 0 and g.pci_bus_id


def test_real_machine_record(tmp_path: Path) -> None:
    record = detect_hardware(tmp_path)
    assert record.cpu.cores_logical == psutil.cpu_count() == os.cpu_count()
    assert record.cpu.cores_physical >= 1
    assert record.cpu.model and record.cpu.vendor
    assert record.memory.total_bytes == psutil.virtual_memory().total
    usage = psutil.disk_usage(str(tmp_path))
    assert record.disk.total_bytes == usage.total
    assert 0 < record.disk.free_bytes <= usage.total
    assert len(record.gpus) == len(detect_gpus().gpus)
    assert HardwareRecord.from_dict(json.loads(record.to_json())) == record


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, "no NVML library (no NVIDIA driver installed)"),
        (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "NVIDIA driver not loaded"),
    ],
)
def test_no_library_or_no_driver_is_no_gpus(code: int, status: str) -> None:
    nvml = FakeNvml(fail={"nvmlInit": code})
    assert detect_gpus(nvml) == gpu.GpuScan((), "", status)
    assert nvml.calls == ["nvmlInit"]


def test_no_device_is_no_gpus() -> None:
    nvml = FakeNvml(count=0)
    scan = detect_gpus(nvml)
    assert scan == gpu.GpuScan((), "580.159.04", "no NVIDIA device")
    assert nvml.calls[-1] == "nvmlShutdown"


def test_other_init_failures_are_named_errors() -> None:
    nvml = FakeNvml(fail={"nvmlInit": pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH})
    with pytest.raises(GpuDetectionError, match=r"NVML nvmlInit failed: .*mismatch.*error 18"):
        detect_gpus(nvml)
    nvml = FakeNvml(fail={"nvmlInit": pynvml.NVML_ERROR_NO_PERMISSION})
    with pytest.raises(GpuDetectionError, match=r"nvmlInit failed: Insufficient Permissions"):
        detect_gpus(nvml)


@pytest.mark.parametrize(
    "call",
    [
        "nvmlSystemGetDriverVersion",
        "nvmlDeviceGetCount",
        "nvmlDeviceGetHandleByIndex",
        "nvmlDeviceGetName",
        "nvmlDeviceGetUUID",
        "nvmlDeviceGetMemoryInfo",
        "nvmlDeviceGetPciInfo",
    ],
)
def test_a_lost_gpu_is_a_named_error_and_nvml_is_shut_down(call: str) -> None:
    nvml = FakeNvml(fail={call: pynvml.NVML_ERROR_GPU_IS_LOST})
    with pytest.raises(GpuDetectionError, match=f"NVML {call}.* failed: GPU is lost"):
        detect_gpus(nvml)
    assert nvml.calls[-1] == "nvmlShutdown" and not nvml.initialised


def test_required_fields_do_not_accept_not_supported() -> None:
    nvml = FakeNvml(fail={"nvmlDeviceGetUUID": pynvml.NVML_ERROR_NOT_SUPPORTED})
    with pytest.raises(GpuDetectionError, match=r"nvmlDeviceGetUUID \(device 0\)"):
        detect_gpus(nvml)


def test_unsupported_optional_fields_are_none() -> None:
    nvml = FakeNvml(
        fail={
            "nvmlDeviceGetMaxClockInfo": pynvml.NVML_ERROR_NOT_SUPPORTED,
            "nvmlDeviceGetCudaComputeCapability": pynvml.NVML_ERROR_NOT_SUPPORTED,
        }
    )
    (only,) = detect_gpus(nvml).gpus
    assert only.max_clock_graphics_mhz is None and only.max_clock_memory_mhz is None
    assert only.compute_capability is None
    assert only.uuid == H200_UUID and only.memory_total_bytes == 150754820096


def test_optional_fields_fail_loudly_on_other_errors() -> None:
    nvml = FakeNvml(fail={"nvmlDeviceGetMaxClockInfo": pynvml.NVML_ERROR_UNKNOWN})
    with pytest.raises(GpuDetectionError, match="nvmlDeviceGetMaxClockInfo"):
        detect_gpus(nvml)


def test_a_failed_shutdown_keeps_the_answer() -> None:
    nvml = FakeNvml(fail={"nvmlShutdown": pynvml.NVML_ERROR_UNKNOWN})
    assert len(detect_gpus(nvml).gpus) == 1


def test_several_gpus_keep_their_order_and_bytes_are_decoded() -> None:
    recording = copy.deepcopy(load("nvml-h200.json"))
    second = copy.deepcopy(recording["devices"][0])
    second["index"] = 1
    second["nvmlDeviceGetUUID"] = b"GPU-11111111-2222-3333-4444-555555555555"  # older pynvml
    second["nvmlDeviceGetName"] = b"NVIDIA H200"
    second["nvmlDeviceGetPciInfo"]["busId"] = b"00000000:00:07.0"
    recording["devices"].append(second)
    recording["count"] = 2
    scan = detect_gpus(FakeNvml(recording))
    assert [g.index for g in scan.gpus] == [0, 1]
    assert scan.gpus[1].uuid == "GPU-11111111-2222-3333-4444-555555555555"
    assert scan.gpus[1].pci_bus_id == "00000000:00:07.0"
    assert scan.status == "2 NVIDIA GPUs"


def test_empty_cpuinfo_answer_still_gives_a_record() -> None:
    cpu = cpu_from_info({}, logical=None, physical=None, freq_max_mhz=0.0)
    assert (cpu.vendor, cpu.model, cpu.cores_logical, cpu.max_clock_mhz) == ("unknown",) * 2 + (
        1,
        0,
    )
    assert cpu.flags == ()


def test_psutil_max_clock_wins_over_the_advertised_one() -> None:
    info = load("cpu-h200-host.json")["cpuinfo"]
    assert cpu_from_info(info, logical=16, physical=8, freq_max_mhz=3800.4).max_clock_mhz == 3800


def test_record_round_trips_through_json(tmp_path: Path) -> None:
    record = h200_record(tmp_path)
    text = record.to_json()
    data = json.loads(text)
    assert data["fingerprint"] == record.fingerprint()
    assert data["gpus"][0]["uuid"] == H200_UUID
    assert HardwareRecord.from_dict(data) == record


def test_fingerprint_ignores_what_changes_by_itself(tmp_path: Path) -> None:
    record = h200_record(tmp_path)
    fp = record.fingerprint()
    assert len(fp) == 64 and fp == h200_record(tmp_path).fingerprint()
    moved = dataclasses.replace(
        record,
        disk=dataclasses.replace(record.disk, free_bytes=1),
        cpu=dataclasses.replace(record.cpu, max_clock_mhz=2445),
        gpu_driver="590.1",
        gpu_status="whatever",
    )
    assert moved.fingerprint() == fp


def test_fingerprint_follows_the_hardware(tmp_path: Path) -> None:
    record = h200_record(tmp_path)
    fp = record.fingerprint()
    changes = [
        dataclasses.replace(record, gpus=()),
        dataclasses.replace(record, memory=dataclasses.replace(record.memory, total_bytes=2**30)),
        dataclasses.replace(record, cpu=dataclasses.replace(record.cpu, cores_logical=8)),
        dataclasses.replace(record, cpu=dataclasses.replace(record.cpu, flags=("sse",))),
        dataclasses.replace(record, disk=dataclasses.replace(record.disk, total_bytes=1)),
        dataclasses.replace(record, disk=dataclasses.replace(record.disk, path="/elsewhere")),
        dataclasses.replace(record, gpus=(dataclasses.replace(record.gpus[0], uuid="GPU-other"),)),
    ]
    prints = {c.fingerprint() for c in changes}
    assert fp not in prints and len(prints) == len(changes)


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        (("cpu",), None, "cpu: an object"),
        (("cpu", "cores_logical"), -1, "cpu.cores_logical"),
        (("cpu", "cores_logical"), True, "cpu.cores_logical"),
        (("cpu", "flags"), "avx", "cpu.flags"),
        (("memory", "total_bytes"), "1", "memory.total_bytes"),
        (("disk", "path"), 5, "disk.path"),
        (("gpus",), {}, "gpus: a list"),
        (("gpus", 0, "uuid"), None, "gpus[0].uuid"),
        (("gpus", 0, "max_clock_graphics_mhz"), 1.5, "gpus[0].max_clock_graphics_mhz"),
        (("gpus", 0, "compute_capability"), 9, "gpus[0].compute_capability"),
        (("fingerprint",), "00" * 32, "fingerprint"),
        (("version",), 99, "version"),
    ],
)
def test_bad_records_name_the_field(
    tmp_path: Path, path: tuple[object, ...], value: object, named: str
) -> None:
    data = h200_record(tmp_path).to_dict()
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(HardwareRecordError, match=named.replace("[", r"\[").replace("]", r"\]")):
        HardwareRecord.from_dict(data)


def test_duplicate_gpu_uuids_are_refused(tmp_path: Path) -> None:
    data = h200_record(tmp_path).to_dict()
    data["gpus"].append(dict(data["gpus"][0], index=1))
    del data["fingerprint"]
    with pytest.raises(HardwareRecordError, match="unique"):
        HardwareRecord.from_dict(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


def _leaves(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in _leaves(v, (*prefix, k))] + [prefix]
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in _leaves(v, (*prefix, i))] + [prefix]
    return [prefix]


H200_DICT = detect_hardware("/", host=RecordedHost(), nvml=FakeNvml()).to_dict()
PATHS = [p for p in _leaves(H200_DICT) if p]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(PATHS), json_values)
def test_any_damage_gives_a_record_or_an_error_naming_the_field(
    path: tuple[Any, ...], value: object
) -> None:
    data = copy.deepcopy(H200_DICT)
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    try:
        record = HardwareRecord.from_dict(data)
    except HardwareRecordError as exc:
        # the damaged field, or (a valid but different value) the fingerprint over it
        assert str(exc).startswith((str(path[0]), "fingerprint")), (path, str(exc))
    else:
        assert HardwareRecord.from_dict(record.to_dict()) == record
