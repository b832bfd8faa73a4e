"""Entry point of the `sonm-p2p` command.

Each area registers its own subcommands from a module of its own, so that the CLI
grows without one file everyone edits. A module listed in COMMAND_MODULES exposes
`register(subparsers)`, which adds parsers whose `func(args) -> int` runs them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from p2pnode.errors import UserError

COMMAND_MODULES: tuple[str, ...] = (
    "p2pnode.cli.keys",
    "p2pnode.cli.node",
    "p2pnode.cli.demo",
    "p2pnode.cli.orders",
    "p2pnode.cli.chain",
    "p2pnode.cli.hub",
    "p2pnode.cli.simulate",
    "p2pnode.cli.hardware",
    "p2pnode.cli.market",
    "p2pnode.cli.task",
    "p2pnode.cli.ui",
    "p2pnode.cli.workers",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sonm-p2p", description="Peer-to-peer overlay for a computing-power market."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that area has not landed its commands yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
