"""`sonm-p2p workers`: a hub's joined workers (hours, paid, owed), or on a worker
the hub it joined and the hubs it heard, through the node's local API."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from p2pnode.cli.common import add_config_options, api_call, config_from_args
from p2pnode.cli.orders import format_size, format_snm


def register(subparsers: Any) -> None:
    cmd = subparsers.add_parser(
        "workers", help="a hub's workers: hours, paid, owed (on a worker: its hub)"
    )
    add_config_options(cmd)
    cmd.add_argument("--json", action="store_true")
    cmd.set_defaults(func=cmd_workers)


def hub_table(data: dict[str, Any]) -> Table:
    table = Table(title=f"workers of hub {data['hub_wallet']}")
    for col in ("worker", "state", "cpu", "ram", "gpus", "pay/h", "hours", "paid", "owed"):
        table.add_column(col)
    for w in data["workers"]:
        table.add_row(
            w["worker"],
            "joined" if w["active"] else "left",
            str(w["cpu_cores"]),
            format_size(int(w["ram_bytes"])),
            str(w["gpus"]),
            format_snm(int(w["pay_per_hour"])),
            f"{w['hours']:.3f}",
            format_snm(int(w["paid"])),
            format_snm(int(w["owed"])),
        )
    return table


def worker_table(data: dict[str, Any]) -> Table:
    table = Table(title=f"hubs heard by worker {data['worker']}")
    for col in ("hub wallet", "status", "pay/h", "open"):
        table.add_column(col)
    for h in data["hubs"]:
        pay = h["pay_per_hour"]
        table.add_row(
            h["wallet"],
            h["status"],
            format_snm(int(pay)) if pay is not None else "-",
            "-" if h["open"] is None else ("yes" if h["open"] else "no"),
        )
    return table


def cmd_workers(args: argparse.Namespace) -> int:
    data = api_call(config_from_args(args), "GET", "/workers")
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    console = Console()
    if data["role"] == "hub":
        console.print(hub_table(data))
        return 0
    console.print(worker_table(data))
    joined = data["joined"]
    if joined is None:
        console.print(f"joined: none ({data['last_action']})")
    else:
        console.print(
            f"joined hub {joined['hub_wallet']} at {format_snm(int(joined['pay_per_hour']))} "
            f"SNM per hour ({data['last_action']})"
        )
    return 0
