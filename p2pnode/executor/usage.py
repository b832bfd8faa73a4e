"""CPU time and peak memory of a running container, for the receipt.

Read from the container's cgroup on this host (the engine is local: the task's
directories are bind mounts), found through /proc/<pid>/cgroup, because the
engine's stats API does not report a peak on every engine (podman's has no
max_usage) and its streaming interval differs between engines. The cgroup goes
away when the container stops, so the executor samples while it runs and keeps
the last figures: CPU time is cumulative and the kernel's peak is a high-water
mark, so the final sample misses at most one sampling interval of CPU time.
Both cgroup v1 (memory.max_usage_in_bytes, cpuacct.usage) and v2 (memory.peak,
cpu.stat usage_usec) are read; where neither is readable, the engine's one-shot
stats stand in (current usage, so the peak is the largest one seen).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass
class Usage:
    cpu_ns: int = 0
    peak_memory_bytes: int = 0
    samples: int = 0

    def merge(self, cpu_ns: int, memory_bytes: int) -> None:
        self.cpu_ns = max(self.cpu_ns, cpu_ns)
        self.peak_memory_bytes = max(self.peak_memory_bytes, memory_bytes)
        self.samples += 1


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class CgroupFiles:
    cpu: Path
    memory: Path
    cpu_v2: bool  # cpu.stat (µs) rather than cpuacct.usage (ns)

    def read(self) -> tuple[int, int] | None:
        """(cpu ns, peak memory bytes), or None once the cgroup is gone."""
        if self.cpu_v2:
            try:
                stat = dict(
                    line.split() for line in self.cpu.read_text().splitlines() if line.strip()
                )
                cpu = int(stat["usage_usec"]) * 1000
            except (OSError, KeyError, ValueError):
                return None
        else:
            value = _read_int(self.cpu)
            if value is None:
                return None
            cpu = value
        memory = _read_int(self.memory)
        if memory is None:
            return None
        return cpu, memory


def cgroup_files(pid: int, root: Path = CGROUP_ROOT) -> CgroupFiles | None:
    """The usage files of the cgroup holding `pid`, v1 controllers first (a hybrid host
    mounts an empty v2 tree beside them)."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    v1: dict[str, str] = {}
    unified = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            unified = path
        for name in controllers.split(","):
            v1[name] = path
    if "memory" in v1 and "cpuacct" in v1:
        mem_dir = root / "memory" / v1["memory"].lstrip("/")
        cpu_dir = root / "cpuacct" / v1["cpuacct"].lstrip("/")
        if not cpu_dir.exists():
            cpu_dir = root / "cpu,cpuacct" / v1["cpuacct"].lstrip("/")
        files = CgroupFiles(cpu_dir / "cpuacct.usage", mem_dir / "memory.max_usage_in_bytes", False)
        return files if files.read() is not None else None
    if unified is not None:
        base = root / unified.lstrip("/")
        peak = base / "memory.peak"
        files = CgroupFiles(
            base / "cpu.stat", peak if peak.exists() else base / "memory.current", True
        )
        return files if files.read() is not None else None
    return None


def usage_from_engine_stats(stats: Mapping[str, Any]) -> tuple[int, int] | None:
    """(cpu ns, memory bytes) from one Docker-API stats answer."""
    try:
        cpu = int(stats["cpu_stats"]["cpu_usage"]["total_usage"])
        mem = stats.get("memory_stats") or {}
        memory = int(mem.get("max_usage") or mem.get("usage") or 0)
    except (KeyError, TypeError, ValueError):
        return None
    return cpu, memory


@dataclass(frozen=True)
class TaskCgroup:
    """A cgroup the executor names as the container's parent (engines with the cgroupfs
    driver create it). It outlives the container, and the kernel charges the child's
    CPU time and memory high-water mark to it, so it gives exact final figures even for
    a task that ends before the first sample. Podman puts its conmon monitor here too
    (about 1 MiB and a few ms of CPU, counted in)."""

    path: str  # absolute within the hierarchy, e.g. /sonm/<executor>-<task>
    root: Path = CGROUP_ROOT

    @property
    def _rel(self) -> str:
        return self.path.lstrip("/")

    def read(self) -> tuple[int, int] | None:
        v1_memory = self.root / "memory" / self._rel
        if v1_memory.is_dir():
            cpu_dir = self.root / "cpuacct" / self._rel
            if not cpu_dir.is_dir():
                cpu_dir = self.root / "cpu,cpuacct" / self._rel
            return CgroupFiles(
                cpu_dir / "cpuacct.usage", v1_memory / "memory.max_usage_in_bytes", False
            ).read()
        base = self.root / self._rel
        if (base / "memory.peak").exists():
            return CgroupFiles(base / "cpu.stat", base / "memory.peak", True).read()
        return None

    def oom_kills(self) -> int | None:
        """OOM kills in the subtree (cgroup v2's hierarchical memory.events); None on v1,
        where the counter stays in the container's own, removed, cgroup."""
        try:
            text = (self.root / self._rel / "memory.events").read_text()
        except OSError:
            return None
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
        return None

    def prepare(self) -> bool:
        """Create the cgroup in every v1 hierarchy before the engine is asked to use it
        as a parent; whether it did. Done here with a few mkdirs (about 1.5 ms) rather
        than by the engine at start, where podman's own set-up of a new parent costs
        about 25 ms on the task's start path (docs/executor.md). cpuset needs its cpus
        and mems filled in before a child may join, copied from the parent as the
        engine would. Only on v1/hybrid hosts; on a pure v2 host the engine creates it
        (with the controllers it enables on the way). False, and nothing left to clean
        up beyond what `remove` takes, when some hierarchy refuses."""
        if not (self.root / "memory").is_dir():
            return False
        try:
            for top in self.root.iterdir():
                if top.name == "unified" or not (top / "cgroup.procs").exists():
                    continue
                (top / self._rel).mkdir(parents=True, exist_ok=True)
            cpuset = self.root / "cpuset"
            if (cpuset / "cgroup.procs").exists():
                parts = self._rel.split("/")
                for depth in range(1, len(parts) + 1):
                    here = cpuset.joinpath(*parts[:depth])
                    for name in ("cpuset.cpus", "cpuset.mems"):
                        if not (here / name).exists() or not (here / name).read_text().strip():
                            (here / name).write_text((here.parent / name).read_text())
        except OSError:
            return False
        return True

    def remove(self) -> bool:
        """rmdir the cgroup in every hierarchy, leaves first; False while some part is
        still busy (podman's conmon leaves it a moment after the container)."""
        tops = [self.root / self._rel]
        try:
            tops += [d / self._rel for d in self.root.iterdir() if (d / self._rel).is_dir()]
        except OSError:
            return False
        for top in tops:
            if not top.is_dir():
                continue
            dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
            for d in [*dirs, top]:
                with contextlib.suppress(OSError):
                    d.rmdir()
        return not any(top.is_dir() for top in tops)
