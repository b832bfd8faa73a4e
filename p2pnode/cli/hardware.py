"""`sonm-p2p hardware`: what this machine has, and (`--bench`) its benchmark fields.

Runs locally, no node needed: the data dir only decides which disk is measured and
where the benchmark cache lives. Tables and the progress bar are for people; `--json`
prints the raw record (with `--bench`: the record, the benchmark fields and whether
they came from the cache) on stdout, and the progress bar goes to stderr.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from p2pnode.cli.common import add_config_options, config_from_args
from p2pnode.errors import LocalError, UserError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "hardware", help="detect this machine's CPU, memory, disk and GPUs; run benchmarks"
    )
    add_config_options(parser)
    parser.add_argument("--json", action="store_true", help="print the raw record as JSON")
    parser.add_argument(
        "--bench", action="store_true", help="show the benchmark fields (measured once, cached)"
    )
    parser.add_argument(
        "--rerun", action="store_true", help="measure the benchmarks again (implies --bench)"
    )
    parser.set_defaults(func=cmd_hardware)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


def _mhz(value: int | None) -> str:
    return "n/a" if not value else f"{value} MHz"


def cmd_hardware(args: argparse.Namespace) -> int:
    from p2pnode.hardware.bench import BenchParams, benchmark_values, ensure_benchmarks
    from p2pnode.hardware.detect import detect_hardware

    config = config_from_args(args)
    try:
        record = detect_hardware(config.data_path)
    except LocalError as exc:
        raise UserError(str(exc)) from exc
    bench = args.bench or args.rerun
    out: dict[str, Any] = {"hardware": record.to_dict()}
    if bench:
        params = BenchParams(
            seconds=config.hardware.bench_seconds,
            net_download_bps=config.hardware.net_download_bps,
            net_upload_bps=config.hardware.net_upload_bps,
        )
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as bar:
            task = bar.add_task("benchmarks", total=1.0)

            def progress(step: str, done: float) -> None:
                bar.update(task, completed=done, description=f"benchmark: {step}")

            try:
                scores, cached = ensure_benchmarks(
                    record, config.data_path, params, rerun=args.rerun, progress=progress
                )
            except LocalError as exc:
                raise UserError(str(exc)) from exc
        out["benchmarks"] = benchmark_values(record, scores, params)
        out["benchmarks_cached"] = cached
        out["benchmarks_measured_at"] = scores.measured_at
    if args.json:
        print(json.dumps(out if bench else out["hardware"], indent=1, sort_keys=True))
        return 0
    _print_tables(record, out)
    return 0


def _print_tables(record: Any, out: dict[str, Any]) -> None:
    console = Console()
    cpu = record.cpu
    table = Table(title="hardware", show_header=False)
    table.add_row("CPU", f"{cpu.model} ({cpu.vendor}, {cpu.arch})")
    table.add_row("cores", f"{cpu.cores_logical} logical, {cpu.cores_physical} physical")
    table.add_row("max clock", _mhz(cpu.max_clock_mhz))
    caches = [
        f"{name} {_size(size)}"
        for name, size in (
            ("L1d", cpu.cache_l1d_bytes),
            ("L1i", cpu.cache_l1i_bytes),
            ("L2", cpu.cache_l2_bytes),
            ("L3", cpu.cache_l3_bytes),
        )
        if size
    ]
    table.add_row("cache", ", ".join(caches) or "n/a")
    table.add_row("flags", f"{len(cpu.flags)}: {' '.join(cpu.flags)}")
    table.add_row("memory", _size(record.memory.total_bytes))
    table.add_row(
        "disk",
        f"{_size(record.disk.free_bytes)} free of {_size(record.disk.total_bytes)} "
        f"({record.disk.path})",
    )
    driver = f", driver {record.gpu_driver}" if record.gpu_driver else ""
    table.add_row("GPUs", f"{record.gpu_status}{driver}")
    table.add_row("fingerprint", record.fingerprint())
    console.print(table)
    if record.gpus:
        gpus = Table(title="NVIDIA GPUs")
        for column in ("#", "name", "UUID", "memory", "max graphics", "max memory", "CC", "PCI"):
            gpus.add_column(column)
        for g in record.gpus:
            gpus.add_row(
                str(g.index),
                g.name,
                g.uuid,
                _size(g.memory_total_bytes),
                _mhz(g.max_clock_graphics_mhz),
                _mhz(g.max_clock_memory_mhz),
                g.compute_capability or "n/a",
                g.pci_bus_id,
            )
        console.print(gpus)
    if "benchmarks" in out:
        source = "cached" if out["benchmarks_cached"] else "measured now"
        bench = Table(title=f"benchmarks ({source})")
        bench.add_column("benchmark")
        bench.add_column("value", justify="right")
        for name, value in out["benchmarks"].items():
            bench.add_row(name, str(value))
        console.print(bench)
