"""`sonm-p2p slot add|list|remove`, `sonm-p2p deals` and `sonm-p2p deal ID` /
`sonm-p2p deal close ID`, through the node's local API (units as in `order`)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from p2pnode.cli.common import add_config_options, api_call, config_from_args
from p2pnode.cli.orders import (
    format_duration,
    format_size,
    format_snm,
    parse_duration,
    parse_price,
    parse_size,
)
from p2pnode.errors import UserError


def register(subparsers: Any) -> None:
    slot = subparsers.add_parser("slot", help="a supplier's slots: shares of this worker it sells")
    sub = slot.add_subparsers(dest="slot_command", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="add a slot; the node places an ASK for it")
    add_config_options(add)
    add.add_argument("slot_id", help="a name: letters, digits, '.', '_', '-'")
    add.add_argument("--cpu", type=int, required=True, metavar="CORES")
    add.add_argument("--ram", required=True, metavar="SIZE", help="e.g. 8GiB")
    add.add_argument("--storage", default="0", metavar="SIZE")
    add.add_argument("--gpu", action="append", metavar="UUID", help="a GPU by UUID (repeat)")
    add.add_argument("--network", choices=("none", "out", "in/out"), default="none")
    add.add_argument("--price", required=True, metavar="SNM", help="per hour, e.g. 0.36")
    add.add_argument("--duration", required=True, help="longest deal, e.g. 2h")
    add.add_argument(
        "--worker",
        default="",
        metavar="ID",
        help="a joined worker's 0x address (`sonm-p2p workers`); default: this machine",
    )
    add.add_argument("--json", action="store_true")
    add.set_defaults(func=cmd_slot_add)
    lst = sub.add_parser("list", help="the slots, their ASKs and deals, and what is free")
    add_config_options(lst)
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_slot_list)
    rm = sub.add_parser("remove", help="remove a slot with no deal running; its ASK is withdrawn")
    add_config_options(rm)
    rm.add_argument("slot_id")
    rm.set_defaults(func=cmd_slot_remove)

    deals = subparsers.add_parser("deals", help="the deals this node is party to")
    add_config_options(deals)
    deals.add_argument("--status", choices=("pending", "accepted", "closed"))
    deals.add_argument("--json", action="store_true")
    deals.set_defaults(func=cmd_deals)
    deal = subparsers.add_parser(
        "deal", help="`deal ID` shows a deal; `deal close ID` closes it (early: pro rata)"
    )
    add_config_options(deal)
    deal.add_argument("--json", action="store_true")
    # options may follow the words (`deal close 7 --json`): parsed again, intermixed
    deal.add_argument("words", nargs=argparse.REMAINDER, metavar="ID | close ID")
    deal.set_defaults(func=cmd_deal)


def cmd_slot_add(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    body = {
        "slot_id": args.slot_id,
        "cpu_cores": args.cpu,
        "ram_bytes": parse_size("--ram", args.ram),
        "storage_bytes": parse_size("--storage", args.storage),
        "gpu_uuids": args.gpu or [],
        "network": args.network,
        "price_per_hour": str(parse_price("--price", args.price)),
        "duration": parse_duration("--duration", args.duration),
        "worker": args.worker.lower(),
    }
    result = api_call(config, "POST", "/slots", body=body)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"slot {result['slot_id']} added; the node places its ASK")
    return 0


def _gpus_cell(slot: dict[str, Any]) -> str:
    """'-', or each GPU's name and memory ('NVIDIA H200 140.4 GiB'); its UUID when the
    worker's record does not name it."""
    gpus = slot.get("gpus") or [{"uuid": u, "name": None} for u in slot["gpu_uuids"]]
    if not gpus:
        return "-"
    return ", ".join(
        f"{g['name']} {format_size(g['memory_bytes'])}" if g.get("name") else g["uuid"]
        for g in gpus
    )


def cmd_slot_list(args: argparse.Namespace) -> int:
    data = api_call(config_from_args(args), "GET", "/slots")
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    table = Table(title="slots")
    for col in ("slot", "cpu", "ram", "storage", "gpus", "net", "price/h", "max", "ask", "deal"):
        table.add_column(col)
    for s in data["slots"]:
        table.add_row(
            s["slot_id"],
            str(s["cpu_cores"]),
            format_size(s["ram_bytes"]),
            format_size(s["storage_bytes"]),
            _gpus_cell(s),
            {0: "none", 1: "out", 3: "in/out"}.get(s["network"], "?"),
            format_snm(int(s["price_per_hour"])),
            format_duration(s["duration"]),
            (s["ask_id"] or "-")[:12],
            str(s["deal"]) if s["deal"] is not None else "-",
        )
    console = Console()
    console.print(table)
    free = data["free"]
    console.print(
        f"free: {free['cpu_cores']} cores, {format_size(free['ram_bytes'])} RAM, "
        f"{format_size(free['storage_bytes'])} storage, {len(free['gpu_uuids'])} GPUs"
    )
    return 0


def cmd_slot_remove(args: argparse.Namespace) -> int:
    api_call(config_from_args(args), "DELETE", f"/slots/{args.slot_id}")
    print(f"slot {args.slot_id} removed")
    return 0


def _when(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def deals_table(deals: list[dict[str, Any]]) -> Table:
    table = Table(title="deals")
    for col in ("id", "role", "status", "price/h", "duration", "escrow", "start", "end", "paid"):
        table.add_column(col)
    for d in deals:
        table.add_row(
            str(d["deal_id"]),
            d["role"],
            d["status"],
            format_snm(int(d["price_per_hour"])),
            format_duration(d["duration"]),
            format_snm(int(d["escrow"])),
            _when(d["start_time"]),
            _when(d["end_time"]),
            format_snm(int(d["paid"])),
        )
    return table


def cmd_deals(args: argparse.Namespace) -> int:
    data = api_call(config_from_args(args), "GET", "/deals", params={"status": args.status})
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        Console().print(deals_table(data["deals"]))
    return 0


def _deal_id(text: str) -> int:
    if not text.isdigit():
        raise UserError(f"deal id {text!r}: expected a number")
    return int(text)


def _deal_args(args: argparse.Namespace) -> argparse.Namespace:
    again = argparse.ArgumentParser(prog="sonm-p2p deal")
    add_config_options(again)
    again.add_argument("--json", action="store_true")
    again.add_argument("words", nargs="+")
    try:
        extra = again.parse_intermixed_args(args.words)
    except SystemExit:
        raise UserError("usage: sonm-p2p deal ID | sonm-p2p deal close ID") from None
    for name in ("config", "data_dir"):
        if getattr(extra, name) is None:
            setattr(extra, name, getattr(args, name, None))
    extra.json = extra.json or args.json
    return extra


def cmd_deal(args: argparse.Namespace) -> int:
    args = _deal_args(args)
    words = args.words
    config = config_from_args(args)
    if len(words) == 1:
        data = api_call(config, "GET", f"/deals/{_deal_id(words[0])}")
    elif len(words) == 2 and words[0] == "close":
        data = api_call(config, "POST", f"/deals/{_deal_id(words[1])}/close")
    else:
        raise UserError("usage: sonm-p2p deal ID | sonm-p2p deal close ID")
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    console = Console()
    console.print(deals_table([data]))
    console.print(
        f"consumer {data['consumer']}  hub wallet {data['hub']}\n"
        f"ask {data['ask_id']}  bid {data['bid_id'] or '-'}  slot {data['slot_id'] or '-'}\n"
        f"refunded {format_snm(int(data['refunded']))} SNM"
    )
    return 0
