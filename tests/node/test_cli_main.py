"""The command table: each command is registered by the module the table names, and
running one command imports only its own module."""

from __future__ import annotations

import argparse
import importlib

from p2pnode.cli.main import COMMAND_MODULES, COMMANDS, build_parser
from tests.conftest import run_python


def test_each_module_registers_exactly_the_commands_listed_for_it() -> None:
    for name in COMMAND_MODULES:
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        importlib.import_module(name).register(sub)
        listed = sorted(c for c, m in COMMANDS.items() if m == name)
        assert sorted(sub.choices) == listed, name


def test_help_lists_every_command_and_one_command_parses_alone() -> None:
    everything = build_parser()
    help_text = everything.format_help()
    for command in COMMANDS:
        assert command in help_text
    args = build_parser("status").parse_args(["status"])
    assert args.command == "status" and callable(args.func)


def test_a_light_command_does_not_import_the_networking_stack() -> None:
    probe = (
        "import sys\n"
        "from p2pnode.cli.main import main\n"
        "try:\n"
        "    main(['status', '--data-dir', '/nonexistent/sonm'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('libp2p', 'web3', 'docker') if m in sys.modules))\n"
    )
    out = run_python(probe, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr
