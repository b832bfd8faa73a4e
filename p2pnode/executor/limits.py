"""What a slot lets a task use, and the locked-down container options built from it.

`container_options` is pure (no engine), so the exact options a task gets can be
tested without one, and so nothing a spec says can widen them: the spec only
chooses image, command, env, working dir and ports; privileges, mounts, devices
and namespaces come from here alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from docker.types import DeviceRequest, Mount

from gossip.orders import NetworkType, Order
from p2pnode.errors import UserError
from p2pnode.executor.spec import RESULTS_DIR, TaskSpec

MIN_RAM_BYTES = 6 * 2**20  # the Docker engine's own minimum for a memory limit
MAX_CPU_CORES = 1024.0
DEFAULT_PIDS_LIMIT = 256
MAX_PIDS_LIMIT = 1 << 22
MAX_GPUS = 64
TMP_MAX_BYTES = 64 * 2**20  # /tmp is a tmpfs: it is charged to the task's memory
_GPU_UUID = re.compile(r"(GPU|MIG)-[0-9a-fA-F-]{8,64}\Z")

LABEL_DEAL = "org.sonm.deal"
LABEL_TASK = "org.sonm.task"
LABEL_EXECUTOR = "org.sonm.executor"  # which executor (data dir) owns the container


class LimitsError(UserError):
    """Slot limits out of range, or a spec that asks for more than the slot gives."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"slot limits: {field}: {problem}")
        self.field = field


@dataclass(frozen=True)
class SlotLimits:
    cpu_cores: float  # may be fractional: 0.5 is half a core of CPU time
    ram_bytes: int  # the memory limit; swap is not granted on top
    storage_bytes: int = 0  # writable layer and results; 0: the executor's results cap only
    pids_limit: int = DEFAULT_PIDS_LIMIT
    network: NetworkType = NetworkType.NONE
    gpu_uuids: tuple[str, ...] = ()  # the slot's GPUs by NVML UUID

    def validate(self) -> None:
        if not isinstance(self.cpu_cores, int | float) or not (
            math.isfinite(self.cpu_cores) and 0.01 <= self.cpu_cores <= MAX_CPU_CORES
        ):
            raise LimitsError("cpu_cores", f"allowed 0.01..{MAX_CPU_CORES}, got {self.cpu_cores!r}")
        if type(self.ram_bytes) is not int or not MIN_RAM_BYTES <= self.ram_bytes <= 2**50:
            raise LimitsError(
                "ram_bytes", f"allowed {MIN_RAM_BYTES}..2**50, got {self.ram_bytes!r}"
            )
        if type(self.storage_bytes) is not int or not 0 <= self.storage_bytes <= 2**60:
            raise LimitsError("storage_bytes", f"allowed 0..2**60, got {self.storage_bytes!r}")
        if type(self.pids_limit) is not int or not 1 <= self.pids_limit <= MAX_PIDS_LIMIT:
            raise LimitsError("pids_limit", f"allowed 1..{MAX_PIDS_LIMIT}, got {self.pids_limit!r}")
        if not isinstance(self.network, NetworkType):
            raise LimitsError("network", f"a NetworkType expected, got {self.network!r}")
        if len(self.gpu_uuids) > MAX_GPUS:
            raise LimitsError("gpu_uuids", f"at most {MAX_GPUS}, got {len(self.gpu_uuids)}")
        for i, uuid in enumerate(self.gpu_uuids):
            if not isinstance(uuid, str) or not _GPU_UUID.match(uuid):
                raise LimitsError(f"gpu_uuids[{i}]", f"an NVML UUID (GPU-...) expected: {uuid!r}")
        if len(set(self.gpu_uuids)) != len(self.gpu_uuids):
            raise LimitsError("gpu_uuids", "duplicate GPUs")

    @property
    def nano_cpus(self) -> int:
        return round(self.cpu_cores * 1e9)

    @classmethod
    def from_order(
        cls, ask: Order, *, gpu_uuids: tuple[str, ...] = (), pids_limit: int = DEFAULT_PIDS_LIMIT
    ) -> SlotLimits:
        """The limits an ASK promises; `gpu_uuids` are the supplier's GPUs backing it."""
        limits = cls(
            cpu_cores=float(ask.cpu_cores),
            ram_bytes=ask.ram_bytes,
            storage_bytes=ask.storage_bytes,
            pids_limit=pids_limit,
            network=ask.network,
            gpu_uuids=gpu_uuids,
        )
        limits.validate()
        if ask.gpu_count and len(gpu_uuids) != ask.gpu_count:
            raise LimitsError(
                "gpu_uuids", f"the ASK offers {ask.gpu_count} GPUs, got {len(gpu_uuids)} UUIDs"
            )
        return limits

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpu_cores": self.cpu_cores,
            "ram_bytes": self.ram_bytes,
            "storage_bytes": self.storage_bytes,
            "pids_limit": self.pids_limit,
            "network": int(self.network),
            "gpu_uuids": list(self.gpu_uuids),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlotLimits:
        try:
            limits = cls(
                cpu_cores=float(data["cpu_cores"]),
                ram_bytes=int(data["ram_bytes"]),
                storage_bytes=int(data.get("storage_bytes", 0)),
                pids_limit=int(data.get("pids_limit", DEFAULT_PIDS_LIMIT)),
                network=NetworkType(int(data.get("network", 0))),
                gpu_uuids=tuple(data.get("gpu_uuids", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LimitsError("limits", f"malformed: {exc}") from None
        limits.validate()
        return limits


def gpu_device_requests(uuids: tuple[str, ...]) -> list[DeviceRequest]:
    """One request naming exactly the slot's GPUs: never `count=-1` (all of the host's)."""
    if not uuids:
        return []
    return [DeviceRequest(driver="nvidia", device_ids=list(uuids), capabilities=[["gpu"]])]


def check_spec_fits(spec: TaskSpec, limits: SlotLimits) -> None:
    """What a spec asks that the slot cannot give is refused before anything runs."""
    if spec.exposed_ports and limits.network != NetworkType.INBOUND_OUTBOUND:
        raise LimitsError(
            "exposed_ports",
            f"the slot's network is {limits.network.name.lower()}; published ports need "
            "inbound_outbound",
        )


def network_options(spec: TaskSpec, limits: SlotLimits) -> dict[str, Any]:
    """none: no interface but loopback; outbound: the default bridge, nothing published;
    in/out: the bridge with the spec's ports published on ports the host chooses."""
    if limits.network == NetworkType.NONE:
        return {"network_mode": "none"}
    if limits.network == NetworkType.OUTBOUND:
        return {"network_mode": "bridge"}
    return {
        "network_mode": "bridge",
        "ports": {f"{port}/tcp": None for port in spec.exposed_ports},
    }


def container_options(
    spec: TaskSpec,
    limits: SlotLimits,
    *,
    labels: Mapping[str, str],
    work_dir_host: str,
    results_dir_host: str,
    storage_size_supported: bool,
) -> dict[str, Any]:
    """Keyword arguments for `containers.create`: the slot's limits and the lock-down."""
    check_spec_fits(spec, limits)
    tmp_size = min(TMP_MAX_BYTES, limits.ram_bytes // 2)
    options: dict[str, Any] = {
        "image": spec.image,
        "command": list(spec.command) or None,
        "environment": dict(spec.env),
        "working_dir": spec.working_dir,
        "labels": dict(labels),
        "detach": True,
        # limits
        "nano_cpus": limits.nano_cpus,
        "mem_limit": limits.ram_bytes,
        "memswap_limit": limits.ram_bytes,  # equal: no swap beyond the RAM limit
        "pids_limit": limits.pids_limit,
        # lock-down
        "privileged": False,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "read_only": True,
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={tmp_size},mode=1777"},
        "mounts": [
            Mount(target=spec.working_dir, source=work_dir_host, type="bind", read_only=False),
            Mount(target=RESULTS_DIR, source=results_dir_host, type="bind", read_only=False),
        ],
        **network_options(spec, limits),
    }
    if limits.storage_bytes and storage_size_supported:
        options["storage_opt"] = {"size": str(limits.storage_bytes)}
    if limits.gpu_uuids:
        options["device_requests"] = gpu_device_requests(limits.gpu_uuids)
    return options
