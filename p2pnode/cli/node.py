"""`sonm-p2p run`, `sonm-p2p status`, `sonm-p2p peers`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from p2pnode.cli.common import add_config_options, api_call, config_from_args
from p2pnode.config import LOG_LEVELS, ROLES, NodeConfig
from p2pnode.errors import LocalError, UserError


def register(subparsers: Any) -> None:
    run = subparsers.add_parser("run", help="run the node daemon")
    add_config_options(run)
    run.add_argument("--role", choices=ROLES, help="node.role")
    run.add_argument("--listen-host", help="network.listen_host")
    run.add_argument("--listen-port", type=int, help="network.listen_port (0: any free port)")
    run.add_argument(
        "--bootstrap", action="append", metavar="MULTIADDR", help="a seed (repeatable)"
    )
    run.add_argument("--api-port", type=int, help="api.port (0: any free port)")
    run.add_argument("--log-level", choices=LOG_LEVELS, help="node.log_level")
    run.set_defaults(func=cmd_run)

    status = subparsers.add_parser("status", help="show the running node's status")
    add_config_options(status)
    status.add_argument("--json", action="store_true", help="print the raw JSON")
    status.set_defaults(func=cmd_status)

    peers = subparsers.add_parser("peers", help="list the running node's peers")
    add_config_options(peers)
    peers.add_argument("--connected", action="store_true", help="only connected peers")
    peers.add_argument("--json", action="store_true", help="print the raw JSON")
    peers.set_defaults(func=cmd_peers)


def cmd_run(args: argparse.Namespace) -> int:
    import trio

    from p2pnode.daemon import Daemon, run_until_signal, setup_logging

    config = config_from_args(
        args,
        **{
            "node.role": args.role,
            "network.listen_host": args.listen_host,
            "network.listen_port": args.listen_port,
            "network.bootstrap": tuple(args.bootstrap) if args.bootstrap else None,
            "api.port": args.api_port,
            "node.log_level": args.log_level,
        },
    )
    setup_logging(config.node.log_level)
    try:
        trio.run(run_until_signal, Daemon(config))
    except BaseException as exc:
        cause = operator_error(exc)
        if cause is None:
            raise
        raise UserError(f"cannot run the node: {cause}") from None
    _exit_now(0)
    return 0


def _exit_now(code: int) -> None:
    """Leave without interpreter teardown once the daemon has stopped cleanly.

    Everything the node keeps is committed and closed by now (SQLite, sockets);
    tearing down the modules of web3, pydantic and py-libp2p would add over a
    second to every stop and break the 2 s shutdown promise.
    """
    import logging
    import os
    import sys

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def operator_error(exc: BaseException) -> str | None:
    """The first error inside (nested) exception groups that the operator can fix."""
    if isinstance(exc, UserError | LocalError):
        return str(exc)
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            found = operator_error(sub)
            if found is not None:
                return found
    return None


# -- API clients -------------------------------------------------------------


def api_get(config: NodeConfig, path: str, params: dict[str, Any] | None = None) -> Any:
    """GET from the local node's API with the data dir's token; UserError if it is down."""
    return api_call(config, "GET", path, params=params)


def cmd_status(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    data = api_get(config, "/status")
    if args.json:
        Console().print_json(data=data)
        return 0
    table = Table(title="node status", show_header=False)
    for key in ("peer_id", "role", "version", "connections", "known_peers", "uptime_s"):
        table.add_row(key, str(data.get(key)))
    table.add_row("target", f"{data.get('min_connections')}..{data.get('max_connections')}")
    table.add_row("listen", "\n".join(data.get("listen_addrs", [])))
    table.add_row("services", ", ".join(data.get("services", [])) or "-")
    Console().print(table)
    return 0


def cmd_peers(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    data = api_get(config, "/peers", {"connected_only": str(bool(args.connected)).lower()})
    if args.json:
        Console().print_json(data=data)
        return 0
    table = Table(title=f"peers: {data['connected']} connected, {data['known']} known")
    table.add_column("peer id")
    table.add_column("conn")
    table.add_column("source")
    table.add_column("addrs")
    table.add_column("last seen")
    table.add_column("fails", justify="right")
    now = time.time()
    for p in data["peers"]:
        seen = f"{now - p['last_seen']:.0f}s ago" if p["last_seen"] else "-"
        table.add_row(
            p["peer_id"],
            "yes" if p["connected"] else "",
            p["source"],
            "\n".join(p["addrs"]),
            seen,
            str(p["failures"]),
        )
    Console().print(table)
    return 0


def data_dir_of(args: argparse.Namespace) -> Path:
    return config_from_args(args).data_path
