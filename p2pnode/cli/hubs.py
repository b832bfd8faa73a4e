"""`sonm-p2p hubs`: each hub's status, why, payments seen and trust (GET /hubs).

The subcommand is registered with the chain commands (p2pnode/cli/chain.py), whose
`hubs --chain` lists the whitelist's hubs from the chain instead."""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table

from p2pnode.cli.common import api_call, config_from_args

_STYLE = {
    "safe": "green",
    "checked": "cyan",
    "unverified": "yellow",
    "suspected": "red",
    "fake": "bold red",
}


def _ago(at: float | None, now: float) -> str:
    return "-" if at is None else f"{max(0.0, now - at):.0f}s ago"


def cmd_node_hubs(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    data = api_call(config, "GET", "/hubs")
    if args.json:
        Console().print_json(data=data)
        return 0
    counts = ", ".join(f"{n} {s}" for s, n in sorted(data["counts"].items())) or "none"
    table = Table(title=f"hubs: {counts}")
    for col in ("hub", "name", "status", "why", "since", "payments", "paid", "trust", "rating"):
        table.add_column(col, justify="right" if col in ("payments", "paid", "trust") else "left")
    now = time.time()
    for h in data["hubs"]:
        why = h["why"] + (f": {h['detail']}" if h["detail"] else "")
        if args.history:
            why = "\n".join(
                f"{x['from']} -> {x['to']}: {x['reason']}"
                + (f" ({x['detail']})" if x["detail"] else "")
                for x in h["history"]
            )
        status = h["status"]
        shown = f"[{_STYLE.get(status, '')}]{status}[/]" if status in _STYLE else status
        if h["warning"] > 0:  # workers neither join nor stay: say why
            proven = f" ({h['proven']} proven)" if h["proven"] else ""
            shown += f"\n[red]warned[/]{proven}"
        table.add_row(
            h["hub"],
            h["name"],
            shown,
            why,
            _ago(h["since"], now),
            str(h["payments_seen"]),
            h["paid_total"],
            f"{h['trust']:.2f}",
            f"{h['rating'] / 100:.0f}%",
        )
    Console().print(table)
    return 0
