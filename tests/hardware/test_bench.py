"""Built-in benchmarks: the workload, the SONM fields, and the cache keyed by the hardware."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from gossip.orders import BENCHMARK_NAMES, make_benchmarks
from p2pnode.errors import LocalError, UserError
from p2pnode.hardware import bench, workload
from p2pnode.hardware.bench import BenchParams, CpuScores, benchmark_values, ensure_benchmarks
from p2pnode.hardware.detect import detect_hardware
from p2pnode.hardware.record import HardwareRecord
from tests.hardware.replay import FakeNvml, RecordedHost

FAST = BenchParams(seconds=0.04, net_download_bps=10**9, net_upload_bps=2 * 10**8)


def one_core_record(tmp_path: Path) -> HardwareRecord:
    """The recorded H200 host cut to one core, so the multi-core run spawns one process."""
    record = detect_hardware(tmp_path, host=RecordedHost(), nvml=FakeNvml())
    return dataclasses.replace(
        record, cpu=dataclasses.replace(record.cpu, cores_logical=1, cores_physical=1)
    )


def test_an_event_is_sysbench_prime_count() -> None:
    assert workload.event() == workload.EXPECTED_PRIMES
    # the same loop sysbench runs: primes in 3..max_prime
    assert workload.event(100) == 24  # 25 primes below 100, less 2


def test_run_for_always_counts_at_least_one_event() -> None:
    events, elapsed = workload.run_for(0.0)
    assert events == 1 and elapsed > 0


def test_measure_cpu_reports_progress_up_to_done(tmp_path: Path) -> None:
    record = one_core_record(tmp_path)
    seen: list[tuple[str, float]] = []
    scores = bench.measure_cpu(record, 0.1, lambda s, f: seen.append((s, f)), clock=lambda: 1234.9)
    assert scores.single > 0 and scores.multi > 0
    assert scores.workers == 1 and scores.measured_at == 1234
    assert scores.fingerprint == record.fingerprint()
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert {"cpu single", "cpu multi", "done"} <= {s for s, _ in seen}


def test_multi_core_run_uses_every_worker(tmp_path: Path) -> None:
    record = one_core_record(tmp_path)
    scores = bench.measure_cpu(record, 0.1, workers=2)
    assert scores.workers == 2 and scores.multi > 0


@pytest.mark.parametrize(
    ("child", "message"),
    [
        ("import sys; sys.exit('no CPU for you')", "did not start: no CPU for you"),
        ("print('ready', flush=True); input(); print('garbage')", "failed .exit 0.: exit 0"),
        ("print('ready', flush=True); input(); raise SystemExit(4)", "failed .exit 4."),
    ],
)
def test_a_failing_benchmark_process_is_a_local_error(
    monkeypatch: pytest.MonkeyPatch, child: str, message: str
) -> None:
    """The child program replaced by one that fails the way a broken machine could."""
    monkeypatch.setattr(bench, "_CHILD", child)
    with pytest.raises(LocalError, match=message):
        bench._measure_multi(2, 0.01, lambda f: None)


def test_benchmark_values_fill_sonms_fields(tmp_path: Path) -> None:
    record = detect_hardware(tmp_path, host=RecordedHost(), nvml=FakeNvml())
    scores = CpuScores(record.fingerprint(), 1, 0, 1.5, 16, single=300, multi=4500)
    values = benchmark_values(record, scores, FAST)
    assert set(values) == set(bench.SUPPLIED) and set(values) <= set(BENCHMARK_NAMES)
    assert values == {
        "cpu-sysbench-single": 300,
        "cpu-sysbench-multi": 4500,
        "cpu-cores": 16,
        "ram-size": 135148564480,
        "storage-size": 68702085120,
        "gpu-count": 1,
        "gpu-mem": 150754820096,
        "net-download": 10**9,
        "net-upload": 2 * 10**8,
    }
    assert len(make_benchmarks(values)) == len(BENCHMARK_NAMES)


def test_no_gpu_means_zero_gpu_fields(tmp_path: Path) -> None:
    record = dataclasses.replace(one_core_record(tmp_path), gpus=())
    scores = CpuScores(record.fingerprint(), 1, 0, 1.0, 1, 1, 1)
    values = benchmark_values(record, scores, BenchParams())
    assert values["gpu-count"] == 0 and values["gpu-mem"] == 0


def test_scores_are_cached_by_fingerprint_and_rerun_on_demand(tmp_path: Path) -> None:
    record = one_core_record(tmp_path)
    data = tmp_path / "data"
    first, cached = ensure_benchmarks(record, data, FAST)
    assert not cached
    stored = json.loads((data / bench.CACHE_FILE).read_text())
    assert stored["fingerprint"] == record.fingerprint()
    assert stored["single"] == first.single
    again, cached = ensure_benchmarks(record, data, FAST)
    assert cached and again == first
    # free disk space and clocks are not hardware changes
    drift = dataclasses.replace(record, disk=dataclasses.replace(record.disk, free_bytes=7))
    assert ensure_benchmarks(drift, data, FAST) == (first, True)
    _, cached = ensure_benchmarks(record, data, FAST, rerun=True)
    assert not cached


def test_changed_hardware_is_measured_again(tmp_path: Path) -> None:
    record = one_core_record(tmp_path)
    ensure_benchmarks(record, tmp_path, FAST)
    bigger = dataclasses.replace(record, memory=dataclasses.replace(record.memory, total_bytes=1))
    scores, cached = ensure_benchmarks(bigger, tmp_path, FAST)
    assert not cached and scores.fingerprint == bigger.fingerprint()
    stored = json.loads((tmp_path / bench.CACHE_FILE).read_text())
    assert stored["fingerprint"] == bigger.fingerprint()


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"fingerprint": 1}',
        "\udcff",
    ],
)
def test_a_damaged_cache_is_measured_again(tmp_path: Path, content: str) -> None:
    record = one_core_record(tmp_path)
    (tmp_path / bench.CACHE_FILE).write_text(content, errors="surrogateescape")
    scores, cached = ensure_benchmarks(record, tmp_path, FAST)
    assert not cached
    assert CpuScores.from_dict(json.loads((tmp_path / bench.CACHE_FILE).read_text())) == scores


def test_another_workload_version_is_measured_again(tmp_path: Path) -> None:
    record = one_core_record(tmp_path)
    scores, _ = ensure_benchmarks(record, tmp_path, FAST)
    old = dataclasses.asdict(scores) | {"workload_version": bench.WORKLOAD_VERSION + 1}
    (tmp_path / bench.CACHE_FILE).write_text(json.dumps(old))
    assert bench.load_cached(tmp_path, record) is None


def test_an_unwritable_data_dir_is_a_local_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(LocalError, match="cannot write the benchmark cache"):
        bench.save_cache(blocker, CpuScores("x", 1, 0, 1.0, 1, 1, 1))


@pytest.mark.parametrize("seconds", [0.0, 0.001, 601.0])
def test_bench_seconds_out_of_range_names_the_key(seconds: float) -> None:
    with pytest.raises(UserError, match=r"hardware\.bench_seconds = .*: allowed 0\.01\.\.600"):
        BenchParams(seconds=seconds).validate()
