"""Options every node-facing subcommand shares: which config and which data dir."""

from __future__ import annotations

import argparse
from typing import Any

from p2pnode.config import NodeConfig, load_config


def add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML config file")
    parser.add_argument("--data-dir", metavar="DIR", help="node data dir (node.data_dir)")


def config_from_args(args: argparse.Namespace, **extra: Any) -> NodeConfig:
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["node.data_dir"] = args.data_dir
    overrides.update({k: v for k, v in extra.items() if v is not None})
    return load_config(getattr(args, "config", None), overrides=overrides)
