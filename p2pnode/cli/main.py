"""Entry point of the `sonm-p2p` command.

Each area registers its own subcommands from a module of its own, so that the CLI
grows without one file everyone edits. A module named in COMMANDS exposes
`register(subparsers)`, which adds parsers whose `func(args) -> int` runs them.

Only the module of the command being run is imported: some areas pull in the
networking or chain libraries, which cost seconds to import, and `sonm-p2p status`
should not pay for the demo's. `--help` with no command imports them all to list
every command.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from p2pnode.errors import UserError

# command -> the module that registers it (tests/node/test_cli_main.py checks that
# each module registers exactly the commands listed for it)
COMMANDS: dict[str, str] = {
    "keys": "p2pnode.cli.keys",
    "run": "p2pnode.cli.node",
    "status": "p2pnode.cli.node",
    "peers": "p2pnode.cli.node",
    "demo": "p2pnode.cli.demo",
    "order": "p2pnode.cli.orders",
    "orders": "p2pnode.cli.orders",
    "chain": "p2pnode.cli.chain",
    "devnet": "p2pnode.cli.chain",
    "hubs": "p2pnode.cli.chain",
    "hub": "p2pnode.cli.hub",
    "simulate": "p2pnode.cli.simulate",
    "hardware": "p2pnode.cli.hardware",
    "slot": "p2pnode.cli.market",
    "deals": "p2pnode.cli.market",
    "deal": "p2pnode.cli.market",
    "task": "p2pnode.cli.task",
    "ui": "p2pnode.cli.ui",
    "workers": "p2pnode.cli.workers",
}

# in the order `--help` lists them
COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(COMMANDS.values()))


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for `command` alone, or for every command when it is None or unknown."""
    parser = argparse.ArgumentParser(
        prog="sonm-p2p", description="Peer-to-peer overlay for a computing-power market."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = (COMMANDS[command],) if command in COMMANDS else COMMAND_MODULES
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except UserError as exc:
        print(f"sonm-p2p: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
