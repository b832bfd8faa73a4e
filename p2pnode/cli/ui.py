"""`sonm-p2p ui`: a one-time address that logs a browser into the node's web view.

The address carries a code the node spends on first use (within a minute) for a
session cookie, never the API token, so the browser's history keeps nothing that
opens the API again.
"""

from __future__ import annotations

import argparse
from typing import Any

from p2pnode.cli.common import add_config_options, api_base, api_call, config_from_args


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("ui", help="print a one-time login address for the web view")
    add_config_options(p)
    p.set_defaults(func=cmd_ui)


def cmd_ui(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    answer = api_call(config, "POST", "/ui/login-code")
    base, _ = api_base(config)
    print(base + answer["path"])
    ttl = int(answer["expires_in"])
    print(f"(works once, within {ttl} s; run `sonm-p2p ui` again for another)")
    return 0
