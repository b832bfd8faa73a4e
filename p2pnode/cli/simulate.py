"""`sonm-p2p simulate`: run a scenario, list them, or sweep a grid on Dask.

    sonm-p2p simulate list
    sonm-p2p simulate SCENARIO --nodes N --seed S --out DIR [--set key=value ...]
    sonm-p2p simulate sweep FILE [--out DIR] [--workers N | --scheduler ADDRESS]
    sonm-p2p simulate figures [--out DIR] [--size small|full] [--seed S] [--set market.KEY=VALUE]

The simulator runs the node's own gossip router on a simulated network
(docs/simulation.md); this module only parses arguments and shows progress.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from p2pnode.errors import UserError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="run a network simulation scenario, or a parameter sweep",
        description="Run SCENARIO (see `simulate list`), `simulate sweep FILE`, or "
        "`simulate figures` (the market and trust figures of the docs).",
    )
    parser.add_argument(
        "scenario", metavar="SCENARIO", help="scenario name, `list`, `sweep` or `figures`"
    )
    parser.add_argument("file", nargs="?", metavar="FILE", help="sweep file (TOML or JSON)")
    parser.add_argument("--nodes", type=int, help="number of (honest) nodes")
    parser.add_argument("--seed", type=int, help="random seed (same seed, same results.json)")
    parser.add_argument("--out", metavar="DIR", help="output directory (default sim-out/NAME)")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other scenario parameter (repeatable)",
    )
    parser.add_argument("--no-plots", action="store_true", help="write results.json only")
    parser.add_argument(
        "--size",
        choices=("small", "full"),
        default="small",
        help="figures: small runs (default, a few minutes) or the trust scenario's full size",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--scheduler", metavar="ADDRESS", help="sweep: use this Dask scheduler (tcp://host:port)"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="sweep: local worker processes (default 2)"
    )
    parser.set_defaults(func=cmd_simulate)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in args.sets:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    if args.nodes is not None:
        out["nodes"] = args.nodes
    if args.seed is not None:
        out["seed"] = args.seed
    return out


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.scenario == "list":
        return _list()
    if args.scenario == "figures":
        return _figures(args)
    if args.scenario == "sweep":
        if not args.file:
            raise UserError("simulate sweep needs a FILE (TOML or JSON grid)")
        if not 1 <= args.workers <= 256:
            raise UserError(f"--workers must be in [1, 256], got {args.workers}")
        from simulations import sweep

        sweep.load(Path(args.file))  # bad files fail here, before anything starts
    else:
        if args.file:
            raise UserError(f"unexpected argument {args.file!r} after scenario {args.scenario!r}")
        from simulations import runner

        runner.prepare(args.scenario, _overrides(args))
    return _sweep(args) if args.scenario == "sweep" else _run(args)


def _figures(args: argparse.Namespace) -> int:
    from rich.console import Console

    from simulations import figures

    if args.file:
        raise UserError(f"unexpected argument {args.file!r} after figures")
    if args.nodes is not None:
        raise UserError("figures take no --nodes; use --set trust.nodes=N or --size")
    overrides = figures.parse_overrides(args.sets)
    out = Path(args.out or "sim-out/figures")
    console = Console(stderr=True)

    def on_run(label: str) -> None:
        if not args.quiet:
            console.print(f"running {label}")

    paths = figures.make(
        out,
        size=args.size,
        seed=args.seed if args.seed is not None else 0,
        overrides=overrides,
        on_run=on_run,
    )
    for p in paths:
        print(p)
    return 0


def _list() -> int:
    from rich.console import Console
    from rich.table import Table

    from simulations.scenarios import SCENARIOS

    table = Table(title="scenarios")
    table.add_column("name")
    table.add_column("parameters (defaults)")
    for name, cls in sorted(SCENARIOS.items()):
        fields = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(cls.Params))
        table.add_row(name, fields)
    Console().print(table)
    return 0


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from simulations import runner

    scenario = runner.prepare(args.scenario, _overrides(args))
    out = Path(args.out or f"sim-out/{args.scenario}")
    console = Console(stderr=True)
    total = runner.end_time(scenario) or 1.0
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.1f}/{task.total:.1f} s virtual"),
        TextColumn("{task.fields[events]} events"),
        TimeElapsedColumn(),
        console=console,
        disable=args.quiet,
    ) as progress:
        task = progress.add_task(args.scenario, total=total, events=0)

        def on_progress(now: float, events: int) -> None:
            progress.update(task, completed=min(now, total), events=events)

        outcome = runner.run_scenario(scenario, on_progress)
    if args.no_plots:
        from simulations import results as results_io

        paths = [results_io.write(outcome.results, out)]
    else:
        paths = runner.write_outputs(outcome, out)
    rate = outcome.events / outcome.wall_s if outcome.wall_s > 0 else 0.0
    for v, r in outcome.results.get("variants", {}).items():
        lat = r.get("latency_s", {})
        console.print(
            f"scoring {v}: delivery {r['delivery_ratio'] * 100:.2f}% "
            f"p50 {_ms(lat.get('p50'))} p99 {_ms(lat.get('p99'))} "
            f"duplicates/msg {r['duplicates_per_delivered']['mean']:.2f}"
        )
    console.print(f"{outcome.events} events in {outcome.wall_s:.1f} s ({rate:,.0f} events/s)")
    for p in paths:
        print(p)
    return 0


def _ms(v: object) -> str:
    return f"{v * 1000:.0f} ms" if isinstance(v, float) else "n/a"


def _sweep(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from simulations import sweep

    spec = sweep.load(Path(args.file))
    out = Path(args.out or f"sim-out/sweep-{spec.scenario}")
    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        disable=args.quiet,
    ) as progress:
        task = progress.add_task("sweep", total=len(spec.runs()))

        def on_done(done: int, total: int) -> None:
            progress.update(task, completed=done)

        path = sweep.run_sweep(
            spec, out, scheduler=args.scheduler, workers=args.workers, on_done=on_done
        )
    print(path)
    return 0
