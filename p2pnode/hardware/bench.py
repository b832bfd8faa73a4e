"""Built-in benchmarks: the SONM benchmark fields a supplier can measure or state here.

Measured: cpu-sysbench-single (the workload on one core) and cpu-sysbench-multi
(one process per logical core, all started together), in events per second.
Read from the hardware record: cpu-cores, ram-size, storage-size (free bytes of the
data dir's disk), gpu-count, gpu-mem (bytes of the smallest GPU, which every GPU
offers). Stated by the operator: net-download and net-upload (config keys
`hardware.net_download_bps`, `hardware.net_upload_bps`): a short speed test against
an arbitrary server would measure that server, not this link.

The measured scores are cached in `<data_dir>/benchmarks.json` with the hardware
fingerprint they were measured on and re-measured only when the hardware (its
fingerprint) or the workload changes, or when asked to.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gossip.orders import make_benchmarks
from p2pnode.errors import LocalError, UserError
from p2pnode.hardware import workload
from p2pnode.hardware.record import HardwareRecord, HardwareRecordError

log = logging.getLogger(__name__)

CACHE_FILE = "benchmarks.json"
# Bumped whenever the workload changes, so that scores of different workloads never mix.
WORKLOAD_VERSION = 1
DEFAULT_SECONDS = 1.5
MAX_SECONDS = 600.0
MIN_SECONDS = 0.01
MEASURED = ("cpu-sysbench-single", "cpu-sysbench-multi")
# The fields a supplier fills; the rest of SONM's list (hash rates, ...) stays 0.
SUPPLIED = (
    *MEASURED,
    "cpu-cores",
    "ram-size",
    "storage-size",
    "gpu-count",
    "gpu-mem",
    "net-download",
    "net-upload",
)

Progress = Callable[[str, float], None]  # (step, overall fraction done 0..1)


@dataclass(frozen=True)
class BenchParams:
    seconds: float = DEFAULT_SECONDS  # measuring time, half single-core, half multi-core
    net_download_bps: int = 0
    net_upload_bps: int = 0

    def validate(self) -> None:
        if not MIN_SECONDS <= self.seconds <= MAX_SECONDS:
            raise UserError(
                f"hardware.bench_seconds = {self.seconds}: allowed {MIN_SECONDS}..{MAX_SECONDS}"
            )


@dataclass(frozen=True)
class CpuScores:
    fingerprint: str  # of the hardware they were measured on
    workload_version: int
    measured_at: int  # unix seconds
    seconds: float  # measuring time used
    workers: int  # processes of the multi-core run
    single: int  # events/s, one core
    multi: int  # events/s, all workers together

    @classmethod
    def from_dict(cls, data: Any) -> CpuScores:
        if not isinstance(data, Mapping):
            raise ValueError("not an object")
        ints = ("workload_version", "measured_at", "workers", "single", "multi")
        for key in ints:
            value = data.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{key}: a non-negative integer expected")
        if not isinstance(data.get("fingerprint"), str):
            raise ValueError("fingerprint: a string expected")
        if not isinstance(data.get("seconds"), int | float):
            raise ValueError("seconds: a number expected")
        return cls(
            fingerprint=data["fingerprint"],
            seconds=float(data["seconds"]),
            **{key: int(data[key]) for key in ints},
        )


def measure_cpu(
    record: HardwareRecord,
    seconds: float,
    progress: Progress | None = None,
    *,
    workers: int | None = None,
    clock: Callable[[], float] = time.time,
) -> CpuScores:
    """Run the workload: `seconds / 2` on one core, then `seconds / 2` on every core."""
    half = seconds / 2
    report = progress or (lambda step, done: None)
    report("cpu single", 0.0)
    events, elapsed = workload.run_for(half, lambda t: report("cpu single", min(t / half, 1.0) / 2))
    single = int(events / elapsed)
    workers = workers or record.cpu.cores_logical
    report("cpu multi", 0.5)
    multi = _measure_multi(workers, half, lambda f: report("cpu multi", 0.5 + f / 2))
    report("done", 1.0)
    return CpuScores(
        fingerprint=record.fingerprint(),
        workload_version=WORKLOAD_VERSION,
        measured_at=int(clock()),
        seconds=seconds,
        workers=workers,
        single=single,
        multi=multi,
    )


def _measure_multi(workers: int, seconds: float, progress: Callable[[float], None]) -> int:
    """Sum of events/s over `workers` processes that start the workload together.

    Plain child interpreters that import only the workload module: no fork (the
    caller may be a daemon with threads) and no re-import of the caller's main
    module (which multiprocessing's spawn needs and a daemon or `python -` lacks).
    """
    root = str(Path(workload.__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-c", _CHILD, repr(seconds)]
    procs: list[subprocess.Popen[str]] = []
    try:
        for _ in range(workers):
            procs.append(
                subprocess.Popen(
                    command,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                )
            )
        for proc in procs:  # the barrier: all imported before any starts
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise LocalError(f"a CPU benchmark process did not start: {_tail(proc)}")
        for proc in procs:
            assert proc.stdin is not None
            try:
                proc.stdin.write("go\n")
                proc.stdin.flush()
            except BrokenPipeError:
                raise LocalError(f"a CPU benchmark process died: {_tail(proc)}") from None
        started = time.monotonic()
        deadline = started + 2 * seconds + 60
        while any(proc.poll() is None for proc in procs):
            if time.monotonic() > deadline:
                raise LocalError("the CPU benchmark processes did not finish in time")
            progress(min((time.monotonic() - started) / seconds, 0.99))
            time.sleep(0.02)
        total = 0.0
        for proc in procs:
            assert proc.stdout is not None
            answer = proc.stdout.read().split()
            if proc.returncode != 0 or len(answer) != 2:
                raise LocalError(
                    f"a CPU benchmark process failed (exit {proc.returncode}): {_tail(proc)}"
                )
            total += int(answer[0]) / float(answer[1])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
    progress(1.0)
    return int(total)


_CHILD = "from p2pnode.hardware.workload import child_main; child_main()"


def _tail(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.kill()
    _, err = proc.communicate()
    lines = (err or "").strip().splitlines()
    return lines[-1] if lines else f"exit {proc.returncode}"


def benchmark_values(
    record: HardwareRecord, scores: CpuScores, params: BenchParams
) -> dict[str, int]:
    """The supplier's benchmark fields by SONM name (every name in SUPPLIED)."""
    values = {
        "cpu-sysbench-single": scores.single,
        "cpu-sysbench-multi": scores.multi,
        "cpu-cores": record.cpu.cores_logical,
        "ram-size": record.memory.total_bytes,
        "storage-size": record.disk.free_bytes,
        "gpu-count": len(record.gpus),
        "gpu-mem": min((g.memory_total_bytes for g in record.gpus), default=0),
        "net-download": params.net_download_bps,
        "net-upload": params.net_upload_bps,
    }
    make_benchmarks(values)  # every value fits the wire (uint64)
    return values


def load_cached(data_dir: Path, record: HardwareRecord) -> CpuScores | None:
    """The cached scores if they were measured on this hardware with this workload."""
    path = data_dir / CACHE_FILE
    try:
        scores = CpuScores.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        log.warning("ignoring the benchmark cache %s: %s", path, exc)
        return None
    if scores.fingerprint != record.fingerprint():
        log.info("hardware changed since the benchmarks were measured: measuring again")
        return None
    if scores.workload_version != WORKLOAD_VERSION:
        return None
    return scores


def save_cache(data_dir: Path, scores: CpuScores) -> None:
    """Written whole or not at all (temporary file, then rename)."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = data_dir / f"{CACHE_FILE}.{os.getpid()}.tmp"  # two runs at once never mix
        tmp.write_text(json.dumps(asdict(scores), indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, data_dir / CACHE_FILE)
    except OSError as exc:
        raise LocalError(
            f"cannot write the benchmark cache in {data_dir}: {exc.strerror or exc}"
        ) from None


def ensure_benchmarks(
    record: HardwareRecord,
    data_dir: Path,
    params: BenchParams,
    *,
    rerun: bool = False,
    progress: Progress | None = None,
) -> tuple[CpuScores, bool]:
    """The scores for this hardware: (scores, True) from the cache, or measured and cached."""
    params.validate()
    if not rerun:
        cached = load_cached(data_dir, record)
        if cached is not None:
            return cached, True
    scores = measure_cpu(record, params.seconds, progress)
    save_cache(data_dir, scores)
    return scores, False


# The scores a node measures or states itself, which nobody can read off its
# hardware record: a worker sends them to its hub with its join, so that the ASKs
# for its slots show what the hub's own ASKs show.
SELF_STATED = (*MEASURED, "net-download", "net-upload")
MAX_SCORE = 2**63 - 1


def node_scores(
    data_dir: Path, record: HardwareRecord, net_download_bps: int, net_upload_bps: int
) -> dict[str, int]:
    """This node's SELF_STATED scores: the cached CPU scores if they were measured on this
    hardware (`sonm-p2p hardware --bench`), the link speeds as configured."""
    out = {"net-download": int(net_download_bps), "net-upload": int(net_upload_bps)}
    cached = load_cached(data_dir, record)
    if cached is not None:
        out["cpu-sysbench-single"] = cached.single
        out["cpu-sysbench-multi"] = cached.multi
    return out


def scores_from(data: Mapping[str, Any]) -> dict[str, int]:
    """The `benchmarks` object of a record's JSON as a worker sent it (absent: none).
    HardwareRecordError names the field: a worker's claim is checked for shape here;
    its truth is the worker's word, as a hub's own scores are the hub's."""
    raw = data.get("benchmarks", {})
    if not isinstance(raw, Mapping):
        raise HardwareRecordError("benchmarks: an object expected")
    out: dict[str, int] = {}
    for name, value in raw.items():
        if name not in SELF_STATED:
            raise HardwareRecordError(f"benchmarks.{name}: allowed {', '.join(SELF_STATED)}")
        if type(value) is not int or not 0 <= value <= MAX_SCORE:
            raise HardwareRecordError(f"benchmarks.{name}: an integer in 0..{MAX_SCORE} expected")
        out[name] = value
    return out


def with_scores(record: HardwareRecord, scores: Mapping[str, int]) -> dict[str, Any]:
    """The record's JSON object with its scores (what a worker signs in its join)."""
    body = record.to_dict()
    body["benchmarks"] = {k: int(v) for k, v in sorted(scores.items()) if k in SELF_STATED}
    return body
