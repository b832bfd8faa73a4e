"""`sonm-p2p keys new|import|show`: the Ethereum keystore and the libp2p identity."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from p2pnode.cli.common import add_config_options, config_from_args
from p2pnode.errors import UserError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("keys", help="manage the node's Ethereum keystore and peer id")
    sub = parser.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    new = sub.add_parser("new", help="create a new account keystore and the peer identity")
    _common(new)
    new.set_defaults(func=cmd_new)

    imp = sub.add_parser("import", help="import a private key or an existing keystore")
    _common(imp)
    src = imp.add_mutually_exclusive_group(required=True)
    src.add_argument("--private-key-file", metavar="FILE", help="file holding a hex private key")
    src.add_argument("--keystore-file", metavar="FILE", help="an existing UTC/JSON keystore")
    imp.set_defaults(func=cmd_import)

    show = sub.add_parser("show", help="unlock the keystore and show the address and peer id")
    _common(show)
    show.set_defaults(func=cmd_show)


def _common(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser)
    parser.add_argument("--keystore", metavar="FILE", help="keystore path (keys.keystore)")
    parser.add_argument(
        "--password-file",
        metavar="FILE",
        help="read the password from FILE (else $SONM_KEY_PASSWORD, else a prompt)",
    )


def _paths(args: argparse.Namespace) -> tuple[Path, Path]:
    config = config_from_args(args, **{"keys.keystore": args.keystore})
    return config.keystore_path, config.data_path


def _print(address: str, peer_id: str, keystore: Path, note: str) -> None:
    table = Table(title=note, show_header=False)
    table.add_row("address", address)
    table.add_row("peer id", peer_id)
    table.add_row("keystore", str(keystore))
    Console().print(table)


def cmd_new(args: argparse.Namespace) -> int:
    from p2pnode import keys

    keystore, data_dir = _paths(args)
    if keystore.exists():
        raise UserError(f"keystore {keystore} already exists; refusing to overwrite it")
    password = keys.read_password(keys.PasswordSource(file=args.password_file), confirm=True)
    address = keys.create_keystore(keystore, password)
    peer = keys.peer_id_of(keys.load_or_create_identity(data_dir))
    _print(address, peer.to_base58(), keystore, "new keys")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from p2pnode import keys

    keystore, data_dir = _paths(args)
    if keystore.exists():
        raise UserError(f"keystore {keystore} already exists; refusing to overwrite it")
    password = keys.read_password(
        keys.PasswordSource(file=args.password_file), confirm=args.private_key_file is not None
    )
    if args.private_key_file:
        secret = keys._read_small_file(Path(args.private_key_file), "private key file")
        address = keys.import_private_key(keystore, secret.decode("ascii", "replace"), password)
    else:
        address = keys.import_keystore(keystore, Path(args.keystore_file), password)
    peer = keys.peer_id_of(keys.load_or_create_identity(data_dir))
    _print(address, peer.to_base58(), keystore, "imported")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from p2pnode import keys

    keystore, data_dir = _paths(args)
    if not keystore.exists():
        raise UserError(f"keystore {keystore} does not exist; create it with `sonm-p2p keys new`")
    keys.keystore_address(keystore)  # a corrupt file is reported before asking for a password
    password = keys.read_password(keys.PasswordSource(file=args.password_file))
    _key, address = keys.unlock_keystore(keystore, password)
    ident = keys.identity_path(data_dir)
    peer = keys.peer_id_of(keys.load_node_identity(ident)).to_base58() if ident.exists() else "-"
    _print(address, peer, keystore, "keys (unlocked)")
    return 0
