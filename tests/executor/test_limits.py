"""The container options a slot gives: limits, lock-down, network modes, GPUs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gossip.orders import NetworkType, Order, Side
from p2pnode.executor.limits import (
    LimitsError,
    SlotLimits,
    container_options,
    gpu_device_requests,
)
from p2pnode.executor.spec import TaskSpec

# the recording of a real H200 host (the same file as the hardware detector tests use)
FIXTURES = Path(__file__).parent / "fixtures"
SPEC = TaskSpec(image="localhost/busybox:latest", command=("true",), exposed_ports=())


def options(limits: SlotLimits, spec: TaskSpec = SPEC, storage: bool = False) -> dict:
    limits.validate()
    return container_options(
        spec,
        limits,
        labels={"org.sonm.deal": "1", "org.sonm.task": "t"},
        work_dir_host="/host/work",
        results_dir_host="/host/results",
        storage_size_supported=storage,
    )


def test_limits_and_lockdown() -> None:
    opts = options(SlotLimits(cpu_cores=1.5, ram_bytes=2**30, pids_limit=100))
    assert opts["nano_cpus"] == 1_500_000_000
    assert opts["mem_limit"] == opts["memswap_limit"] == 2**30
    assert opts["pids_limit"] == 100
    assert opts["privileged"] is False
    assert opts["cap_drop"] == ["ALL"] and "cap_add" not in opts
    assert opts["security_opt"] == ["no-new-privileges"]
    assert opts["read_only"] is True
    assert set(opts["tmpfs"]) == {"/tmp"}
    targets = {m["Target"]: (m["Source"], m["ReadOnly"]) for m in opts["mounts"]}
    assert targets == {"/work": ("/host/work", False), "/results": ("/host/results", False)}
    assert opts["labels"] == {"org.sonm.deal": "1", "org.sonm.task": "t"}
    for forbidden in ("devices", "volumes", "pid_mode", "ipc_mode", "userns_mode", "cap_add"):
        assert forbidden not in opts
    assert "storage_opt" not in opts and "device_requests" not in opts


def test_storage_only_where_the_engine_enforces_it() -> None:
    limits = SlotLimits(cpu_cores=1, ram_bytes=2**28, storage_bytes=10**9)
    assert "storage_opt" not in options(limits, storage=False)
    assert options(limits, storage=True)["storage_opt"] == {"size": "1000000000"}


def test_network_modes() -> None:
    web = TaskSpec(image="busybox", exposed_ports=(8080, 9090))
    none = options(SlotLimits(cpu_cores=1, ram_bytes=2**28))
    assert none["network_mode"] == "none" and "ports" not in none
    out = options(SlotLimits(cpu_cores=1, ram_bytes=2**28, network=NetworkType.OUTBOUND))
    assert out["network_mode"] == "bridge" and "ports" not in out
    inout = options(
        SlotLimits(cpu_cores=1, ram_bytes=2**28, network=NetworkType.INBOUND_OUTBOUND), web
    )
    assert inout["network_mode"] == "bridge"
    assert inout["ports"] == {"8080/tcp": None, "9090/tcp": None}
    with pytest.raises(LimitsError, match="exposed_ports"):
        options(SlotLimits(cpu_cores=1, ram_bytes=2**28, network=NetworkType.OUTBOUND), web)


def test_gpu_requests_for_the_h200_fixture() -> None:
    nvml = json.loads((FIXTURES / "nvml-h200.json").read_text())
    uuids = tuple(d["nvmlDeviceGetUUID"] for d in nvml["devices"])
    assert uuids == ("GPU-03301946-e2a6-3999-0a3c-83c221cafeba",)
    opts = options(SlotLimits(cpu_cores=16, ram_bytes=128 * 2**30, gpu_uuids=uuids))
    (request,) = opts["device_requests"]
    assert request["Driver"] == "nvidia"
    assert request["DeviceIDs"] == ["GPU-03301946-e2a6-3999-0a3c-83c221cafeba"]
    assert request["Capabilities"] == [["gpu"]]
    assert request["Count"] == 0  # by UUID, never "all GPUs" (-1)
    assert gpu_device_requests(()) == []


def test_from_an_ask() -> None:
    nvml = json.loads((FIXTURES / "nvml-h200.json").read_text())
    device = nvml["devices"][0]
    ask = Order.create(
        author=b"\x01" * 20,
        side=Side.ASK,
        price_per_hour=1,
        duration=3600,
        nonce=1,
        valid_from=1,
        valid_until=2,
        cpu_cores=16,
        ram_bytes=128 * 2**30,
        storage_bytes=10**11,
        gpu_count=1,
        gpu_mem_bytes=device["nvmlDeviceGetMemoryInfo"]["total"],
        network=NetworkType.OUTBOUND,
    )
    limits = SlotLimits.from_order(ask, gpu_uuids=(device["nvmlDeviceGetUUID"],))
    assert limits.cpu_cores == 16 and limits.ram_bytes == 128 * 2**30
    assert limits.storage_bytes == 10**11 and limits.network == NetworkType.OUTBOUND
    with pytest.raises(LimitsError, match="1 GPUs"):
        SlotLimits.from_order(ask)
    assert SlotLimits.from_dict(limits.to_dict()) == limits


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cpu_cores": 0}, "cpu_cores"),
        ({"cpu_cores": float("nan")}, "cpu_cores"),
        ({"ram_bytes": 1024}, "ram_bytes"),
        ({"storage_bytes": -1}, "storage_bytes"),
        ({"pids_limit": 0}, "pids_limit"),
        ({"gpu_uuids": ("not-a-uuid",)}, "gpu_uuids[0]"),
        ({"gpu_uuids": ("GPU-03301946-e2a6",) * 2}, "gpu_uuids"),
    ],
)
def test_bad_limits_are_named(kwargs: dict, field: str) -> None:
    base = {"cpu_cores": 1.0, "ram_bytes": 2**28}
    with pytest.raises(LimitsError) as info:
        SlotLimits(**{**base, **kwargs}).validate()
    assert info.value.field == field
