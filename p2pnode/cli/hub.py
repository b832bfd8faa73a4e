"""`sonm-p2p hub create-wallet` and `sonm-p2p hub register`: a supplier's account
becomes a hub on chain (contracts/hubsetup.py does the work, as for the demo).

Both sign with the node's keystore (the password from --password-file, else
$SONM_KEY_PASSWORD, else a prompt) and talk to the chain the node's config names
(`chain.rpc`, `chain.addresses`), or to --rpc / --addresses.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from p2pnode.cli.common import add_config_options, config_from_args
from p2pnode.errors import UserError


def register(subparsers: Any) -> None:
    hub = subparsers.add_parser("hub", help="make this account a hub on chain (wallet, register)")
    sub = hub.add_subparsers(dest="hub_command", metavar="ACTION", required=True)

    create = sub.add_parser(
        "create-wallet", help="create a hub wallet through the factory, owned by this account"
    )
    _common(create)
    create.set_defaults(func=cmd_create_wallet)

    reg = sub.add_parser(
        "register",
        help="fund the wallet up to the deposit (from this account) and register it, "
        "which lists it in the whitelist",
    )
    _common(reg)
    reg.add_argument(
        "--wallet", metavar="ADDRESS", help="the hub wallet (default: market.hub_wallet)"
    )
    reg.add_argument("--name", required=True, help="the hub's name in the whitelist (<= 64 bytes)")
    reg.add_argument(
        "--addr",
        metavar="MULTIADDR",
        action="append",
        help="where the hub is reached (repeat; default: network.announce)",
    )
    reg.set_defaults(func=cmd_register)


def _common(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser)
    parser.add_argument("--rpc", metavar="URL", help="JSON-RPC endpoint (chain.rpc)")
    parser.add_argument("--addresses", metavar="FILE", help="addresses JSON (chain.addresses)")
    parser.add_argument("--keystore", metavar="FILE", help="keystore path (keys.keystore)")
    parser.add_argument(
        "--password-file",
        metavar="FILE",
        help="read the password from FILE (else $SONM_KEY_PASSWORD, else a prompt)",
    )


def _connect(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """The node's config, the contracts on its chain, and its unlocked account."""
    from eth_account import Account

    from contracts.chain import rpc_chain
    from contracts.deploy import System, SystemAddresses
    from p2pnode import keys

    config = config_from_args(args, **{"keys.keystore": args.keystore})
    rpc = args.rpc or config.chain.rpc
    addresses_path = args.addresses or config.chain.addresses
    if not rpc:
        raise UserError("give --rpc URL (or chain.rpc): a hub is registered on a shared chain")
    if not addresses_path:
        raise UserError("give --addresses FILE (or chain.addresses)")
    addresses = SystemAddresses.load(Path(addresses_path))
    path = config.keystore_path
    if not path.exists():
        raise UserError(f"no keystore at {path}: run `sonm-p2p keys new` or `keys import` first")
    password = keys.read_password(keys.PasswordSource(file=args.password_file))
    private_key, _ = keys.unlock_keystore(path, password)
    account = Account.from_key(private_key)
    chain = rpc_chain(rpc)
    if chain.chain_id != addresses.chain_id:
        raise UserError(
            f"{addresses_path} is for chain {addresses.chain_id}, but {rpc} is chain "
            f"{chain.chain_id}"
        )
    return config, System.connect(chain, addresses), account


def cmd_create_wallet(args: argparse.Namespace) -> int:
    from contracts.hubsetup import create_wallet
    from p2pnode.cli.chain import _user_errors

    _, system, account = _connect(args)
    wallet, tx = _user_errors(lambda: create_wallet(system, account))
    console = Console()
    console.print(f"hub wallet {wallet} created for {account.address} (tx {tx})")
    console.print(
        f"deposit to register: {system.factory.deposit()} token wei; next: "
        f"`sonm-p2p hub register --wallet {wallet} --name NAME`; the node's config:"
    )
    print(f'[market]\nhub_wallet = "{wallet}"', flush=True)
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    from contracts.hubsetup import register_hub
    from p2pnode.cli.chain import _user_errors

    config, system, account = _connect(args)
    wallet = args.wallet or config.market.hub_wallet
    if not wallet:
        raise UserError("give --wallet ADDRESS (or market.hub_wallet)")
    addrs = args.addr or list(config.network.announce)
    if not addrs:
        raise UserError("give --addr MULTIADDR (or network.announce): where consumers reach it")
    done = _user_errors(
        lambda: register_hub(system, wallet, account, name=args.name, multiaddrs=addrs)
    )
    console = Console()
    for what, tx in done.txs.items():
        console.print(f"{what}: tx {tx}")
    console.print(
        f"hub wallet {done.wallet} is {done.status.name}, {done.frozen} token wei frozen; "
        f"listed in the whitelist {system.addresses.whitelist} as {args.name!r}"
    )
    return 0
