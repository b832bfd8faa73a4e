"""`sonm-p2p chain deploy`, `sonm-p2p devnet` and `sonm-p2p hubs`.

deploy puts the whole contract system on a chain and writes the addresses file a
daemon reads (`chain.addresses`); devnet starts a local anvil, deploys, funds the dev
accounts and prints the config a node needs; hubs lists the Whitelist with what the
chain says about each hub.
"""

from __future__ import annotations

import argparse
import decimal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.table import Table

from p2pnode.cli.common import add_config_options, config_from_args
from p2pnode.errors import LocalError, UserError

T = TypeVar("T")
SNM = 10**18
DEVNET_FUNDING = 1_000_000 * SNM


def register(subparsers: Any) -> None:
    chain = subparsers.add_parser("chain", help="deploy and inspect the on-chain contracts")
    sub = chain.add_subparsers(dest="chain_command", metavar="ACTION", required=True)
    deploy = sub.add_parser("deploy", help="deploy token, whitelist, wallet factory and deals")
    deploy.add_argument("--rpc", metavar="URL", help="JSON-RPC endpoint (default: embedded chain)")
    deploy.add_argument("--out", metavar="FILE", required=True, help="addresses JSON to write")
    deploy.add_argument(
        "--private-key-file", metavar="FILE", help="deployer key (default: the node's account 0)"
    )
    deploy.add_argument("--dao", metavar="ADDRESS", help="DAO address (default: the deployer)")
    _add_param_options(deploy)
    deploy.set_defaults(func=cmd_deploy)

    devnet = subparsers.add_parser(
        "devnet", help="start a local anvil chain with the contracts deployed (Ctrl-C stops it)"
    )
    devnet.add_argument(
        "--out", metavar="FILE", default="devnet-addresses.json", help="addresses JSON to write"
    )
    devnet.add_argument("--accounts", type=int, default=10, help="funded dev accounts (1-100)")
    _add_param_options(devnet)
    devnet.set_defaults(func=cmd_devnet)

    hubs = subparsers.add_parser(
        "hubs",
        help="hubs as this node sees them (status, why, payments, trust); "
        "--chain: the whitelist's hubs with their on-chain facts",
    )
    add_config_options(hubs)
    hubs.add_argument(
        "--chain",
        action="store_true",
        help="list the whitelist's hubs from the chain (implied by --rpc, --addresses, "
        "--min-frozen) instead of asking the running node",
    )
    hubs.add_argument("--json", action="store_true", help="the node's view: print the raw JSON")
    hubs.add_argument("--history", action="store_true", help="the node's view: every status change")
    hubs.add_argument("--rpc", metavar="URL", help="JSON-RPC endpoint (chain.rpc)")
    hubs.add_argument("--addresses", metavar="FILE", help="addresses JSON (chain.addresses)")
    hubs.add_argument(
        "--min-frozen",
        type=snm_amount,
        help="minimum frozen deposit in SNM (default: the factory's)",
    )
    hubs.set_defaults(func=cmd_hubs_any)


def snm_amount(text: str) -> int:
    """Parse an SNM amount ("10000", "0.5") exactly into token wei."""
    try:
        value = decimal.Decimal(text)
    except decimal.InvalidOperation as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
    wei = value * SNM
    if not value.is_finite() or value < 0 or wei != wei.to_integral_value():
        raise argparse.ArgumentTypeError(f"an SNM amount >= 0 with at most 18 decimals: {text!r}")
    return int(wei)


def _add_param_options(parser: argparse.ArgumentParser) -> None:
    from contracts.params import SystemParams

    d = SystemParams()
    parser.add_argument("--deposit", type=snm_amount, default=d.deposit, help="hub deposit, SNM")
    parser.add_argument(
        "--lock-bps", type=int, default=d.lock_bps, help="lock fee, 1/10000 of each payment"
    )
    parser.add_argument(
        "--payout-period", type=int, default=d.payout_period, help="seconds between paydays"
    )
    parser.add_argument(
        "--waiting-period", type=int, default=d.waiting_period, help="seconds from suspect to ban"
    )


def _params(args: argparse.Namespace) -> Any:
    from contracts.deploy import SystemParams

    params = SystemParams(
        deposit=args.deposit,
        lock_bps=args.lock_bps,
        payout_period=args.payout_period,
        waiting_period=args.waiting_period,
    )
    try:
        params.validate()
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    return params


def _user_errors(fn: Callable[[], T]) -> T:
    """Chain and environment failures become one-line operator errors."""
    from contracts.errors import ChainError

    try:
        return fn()
    except (ChainError, LocalError) as exc:
        raise UserError(str(exc)) from exc


def _deployer(args: argparse.Namespace) -> Any:
    if not args.private_key_file:
        return None
    from eth_account import Account

    path = Path(args.private_key_file)
    try:
        text = path.read_text().strip()
        return Account.from_key(text)
    except OSError as exc:
        raise UserError(f"--private-key-file {path}: {exc.strerror or exc}") from exc
    except (ValueError, TypeError) as exc:
        raise UserError(f"--private-key-file {path}: not a hex private key") from exc


def cmd_deploy(args: argparse.Namespace) -> int:
    from contracts.chain import connect
    from contracts.deploy import deploy_system

    params = _params(args)
    deployer = _deployer(args)
    out = Path(args.out)

    def run() -> Any:
        chain = connect(args.rpc)
        return deploy_system(chain, deployer=deployer, dao=args.dao, params=params, out=out)

    addresses = _user_errors(run)
    console = Console()
    console.print(f"deployed on chain {addresses.chain_id}; addresses written to {out}")
    _print_addresses(console, addresses)
    if args.rpc is None:
        console.print(
            "[yellow]note:[/] no --rpc given, so this went to an embedded chain that lived "
            "only inside this process and is gone now; deploy with --rpc URL (or run "
            "`sonm-p2p devnet`) for addresses other processes can use."
        )
    return 0


def _print_addresses(console: Console, addresses: Any) -> None:
    table = Table(title="contracts")
    table.add_column("contract")
    table.add_column("address")
    for name in ("token", "whitelist", "factory", "deals", "hub_wallet_blueprint", "dao"):
        table.add_row(name, getattr(addresses, name))
    console.print(table)


def cmd_devnet(args: argparse.Namespace) -> int:
    from contracts.anvil import AnvilProcess, dev_private_keys
    from contracts.chain import rpc_chain
    from contracts.deploy import System, deploy_system

    if not 1 <= args.accounts <= 100:
        raise UserError(f"--accounts must be in [1, 100], got {args.accounts}")
    params = _params(args)
    out = Path(args.out).resolve()
    anvil = AnvilProcess(accounts=args.accounts)
    _user_errors(anvil.start)
    try:

        def setup() -> Any:
            chain = rpc_chain(anvil.url)
            addresses = deploy_system(chain, params=params, out=out)
            system = System.connect(chain, addresses)
            for account in chain.accounts[1:]:
                system.token.transfer(account, DEVNET_FUNDING, sender=addresses.dao)
            return chain, addresses

        chain, addresses = _user_errors(setup)
        console = Console()
        console.print(f"[bold]devnet up[/]: anvil at {anvil.url}, chain id {addresses.chain_id}")
        _print_addresses(console, addresses)
        table = Table(title="dev accounts (well-known test keys: never use them elsewhere)")
        for col in ("#", "address", "private key", "SNM"):
            table.add_column(col)
        keys = dev_private_keys(args.accounts)
        for i, (account, key) in enumerate(zip(chain.accounts, keys, strict=True)):
            role = " (deployer, DAO)" if i == 0 else ""
            table.add_row(str(i), account + role, key, "rest of supply" if i == 0 else "1000000")
        console.print(table)
        console.print("node config (TOML):")
        print(
            f'[chain]\nrpc = "{anvil.url}"\naddresses = "{out}"\nchain_id = {addresses.chain_id}',
            flush=True,
        )
        console.print("press Ctrl-C to stop")
        while anvil.running:
            time.sleep(0.2)
        time.sleep(0.5)  # a terminal Ctrl-C reaches anvil too; let ours arrive first
        raise UserError("anvil exited unexpectedly")
    except KeyboardInterrupt:
        return 0
    finally:
        anvil.stop()


def cmd_hubs_any(args: argparse.Namespace) -> int:
    """The node's view (GET /hubs), or with --chain (or a chain option) the chain's."""
    if args.chain or args.rpc or args.addresses or args.min_frozen is not None:
        return cmd_hubs(args)
    from p2pnode.cli.hubs import cmd_node_hubs

    return cmd_node_hubs(args)


def cmd_hubs(args: argparse.Namespace) -> int:
    from contracts.chain import rpc_chain
    from contracts.deploy import System, SystemAddresses
    from contracts.verify import HubVerifier, VerifierParams

    config = config_from_args(args)
    rpc = args.rpc or config.chain.rpc
    addresses_path = args.addresses or config.chain.addresses
    if not rpc:
        raise UserError(
            "hubs needs --rpc URL (or chain.rpc): the embedded chain exists only inside "
            "one process, so there is nothing to list from here"
        )
    if not addresses_path:
        raise UserError("hubs needs --addresses FILE (or chain.addresses)")
    addresses = SystemAddresses.load(Path(addresses_path))

    def read() -> tuple[Any, list[Any], dict[str, int]]:
        chain = rpc_chain(rpc)
        if chain.chain_id != addresses.chain_id:
            raise UserError(
                f"{addresses_path} is for chain {addresses.chain_id}, but {rpc} is chain "
                f"{chain.chain_id}"
            )
        system = System.connect(chain, addresses)
        minimum = args.min_frozen if args.min_frozen is not None else system.factory.deposit()
        verifier = HubVerifier(system, VerifierParams(min_frozen_funds=minimum))
        rows = []
        balances = {}
        for hub in system.whitelist.hubs():
            rows.append(verifier.verify(hub.wallet, hub.owner))
            balances[hub.wallet] = system.token.balance_of(hub.wallet)
        return system, rows, balances

    _system, rows, balances = _user_errors(read)
    table = Table(title=f"hubs ({len(rows)})")
    for col in ("name", "wallet", "owner", "status", "trusted", "frozen SNM", "balance SNM"):
        table.add_column(col)
    for col in ("payouts", "avg payout SNM", "regularity", "verdict"):
        table.add_column(col)
    for v in rows:
        f = v.facts
        p = f.payouts
        table.add_row(
            f.name,
            f.wallet,
            f.registered_owner or "-",
            f.status.name if f.status is not None else "-",
            "yes" if f.trusted else "no",
            _snm(f.frozen_funds),
            _snm(balances[f.wallet]),
            str(p.count),
            _snm(p.average),
            f"{p.regularity:.2f}" if p.regularity is not None else "-",
            v.verdict.value + (f" ({'; '.join(v.reasons)})" if v.reasons else ""),
        )
    Console().print(table)
    return 0


def _snm(wei: int) -> str:
    whole, frac = divmod(wei, SNM)
    return f"{whole}" if frac == 0 else f"{whole}.{frac:018d}".rstrip("0")
