"""`sonm-p2p hardware` as an operator runs it: a real subprocess on this machine."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psutil
import pytest

from p2pnode.hardware.bench import CACHE_FILE, SUPPLIED
from p2pnode.hardware.gpu import detect_gpus
from tests.conftest import run_cli


def test_json_is_the_raw_record(tmp_path: Path) -> None:
    proc = run_cli("hardware", "--data-dir", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["cpu"]["cores_logical"] == os.cpu_count()
    assert record["memory"]["total_bytes"] == psutil.virtual_memory().total
    assert record["disk"]["path"] == str(tmp_path)
    scan = detect_gpus()
    assert [g["uuid"] for g in record["gpus"]] == [g.uuid for g in scan.gpus]
    assert record["gpu_status"] == scan.status
    assert len(record["fingerprint"]) == 64
    assert not (tmp_path / CACHE_FILE).exists()  # no --bench: nothing measured


def test_table_names_what_was_found(tmp_path: Path) -> None:
    proc = run_cli("hardware", "--data-dir", str(tmp_path), env={"COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    for label in ("CPU", "cores", "memory", "disk", "GPUs", "fingerprint"):
        assert label in proc.stdout
    assert detect_gpus().status in proc.stdout
    assert f"{os.cpu_count()} logical" in proc.stdout


@pytest.mark.slow
def test_bench_measures_once_then_reads_the_cache(tmp_path: Path) -> None:
    env = {
        "SONM_HARDWARE_BENCH_SECONDS": "0.05",
        "SONM_HARDWARE_NET_DOWNLOAD_BPS": "100000000",
        "SONM_HARDWARE_NET_UPLOAD_BPS": "20000000",
    }
    args = ("hardware", "--data-dir", str(tmp_path), "--bench", "--json")
    first = run_cli(*args, env=env)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert out["benchmarks_cached"] is False
    values = out["benchmarks"]
    assert set(values) == set(SUPPLIED)
    assert values["cpu-sysbench-single"] > 0 and values["cpu-sysbench-multi"] > 0
    assert values["cpu-cores"] == os.cpu_count()
    assert values["net-download"] == 100_000_000 and values["net-upload"] == 20_000_000
    assert values["gpu-count"] == len(out["hardware"]["gpus"])
    cache = json.loads((tmp_path / CACHE_FILE).read_text())
    assert cache["fingerprint"] == out["hardware"]["fingerprint"]

    second = run_cli(*args, env=env)
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    assert again["benchmarks_cached"] is True
    for name in ("cpu-sysbench-single", "cpu-sysbench-multi"):
        assert again["benchmarks"][name] == values[name]

    table = run_cli(
        "hardware", "--data-dir", str(tmp_path), "--rerun", env=env | {"COLUMNS": "200"}
    )
    assert table.returncode == 0, table.stderr
    assert "benchmarks (measured now)" in table.stdout
    assert "cpu-sysbench-multi" in table.stdout and "net-download" in table.stdout


def test_bad_bench_config_is_one_line(tmp_path: Path) -> None:
    proc = run_cli(
        "hardware", "--data-dir", str(tmp_path), "--bench", env={"SONM_HARDWARE_BENCH_SECONDS": "0"}
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip() == "sonm-p2p: error: hardware.bench_seconds = 0.0: allowed 0.01..600.0"
    )
    assert "Traceback" not in proc.stderr
