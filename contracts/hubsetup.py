"""Becoming a hub on chain: a wallet made by the factory, funded up to the deposit,
registered (which lists it in the Whitelist every node checks hubs against).

The `sonm-p2p hub` commands and the local demo network both go through here, so an
operator's hub and the demo's are made the same way. Each step checks what the
contracts would refuse before it sends anything, so a mistake is a sentence naming
the fix rather than a reverted transaction that cost gas.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from web3 import Web3

from contracts.client import Sender, sender_address
from contracts.deploy import System
from contracts.records import MULTIADDR_SEPARATOR, HubStatus, join_multiaddrs
from gossip.errors import UserError

MAX_NAME_BYTES = 64  # HubWallet.register: String[64]
MAX_MULTIADDRS_BYTES = 512  # HubWallet.register: String[512], joined


class HubSetupError(UserError):
    """What the operator asked for cannot be done on this chain (the reason says why)."""


@dataclass(frozen=True)
class Registration:
    """What register_hub did: the transactions it sent (by what), the wallet's state after."""

    wallet: str
    status: HubStatus
    frozen: int
    txs: dict[str, str] = field(default_factory=dict)  # "fund", "register" -> tx hash


def create_wallet(system: System, owner: Sender) -> tuple[str, str]:
    """A new hub wallet owned by `owner`, made by the deployment's factory: its address
    and the transaction's hash."""
    wallet, result = system.factory.create_wallet(sender=owner)
    return wallet, result.tx_hash


def check_listing(name: str, multiaddrs: list[str] | tuple[str, ...]) -> str:
    """The multiaddrs as the wallet stores them, or why the contract would refuse."""
    if not name or len(name.encode()) > MAX_NAME_BYTES:
        raise HubSetupError(f"hub name must be 1..{MAX_NAME_BYTES} bytes, got {name!r}")
    if not multiaddrs:
        raise HubSetupError("give at least one multiaddr the hub is reached at")
    for a in multiaddrs:
        if not a.startswith("/") or MULTIADDR_SEPARATOR in a:
            raise HubSetupError(f"not a multiaddr: {a!r}")
    joined = join_multiaddrs(multiaddrs)
    if len(joined.encode()) > MAX_MULTIADDRS_BYTES:
        raise HubSetupError(
            f"the multiaddrs take {len(joined.encode())} bytes joined; "
            f"the wallet keeps at most {MAX_MULTIADDRS_BYTES}"
        )
    return joined


def register_hub(
    system: System,
    wallet: str,
    owner: Sender,
    *,
    name: str,
    multiaddrs: list[str] | tuple[str, ...],
    funder: Sender | None = None,
) -> Registration:
    """Top the wallet up to the factory's deposit from `funder` (the owner unless
    given) where it holds less, then register it under `name` and `multiaddrs`."""
    check_listing(name, multiaddrs)
    if not Web3.is_address(wallet):
        raise HubSetupError(f"not an address: {wallet!r}")
    wallet = Web3.to_checksum_address(wallet)
    if not system.factory.is_wallet(wallet):
        raise HubSetupError(f"{wallet} was not made by the factory {system.factory.address}")
    hub = system.wallet(wallet)
    state = hub.state()
    me = sender_address(owner)
    if state.owner.lower() != me.lower():
        raise HubSetupError(f"wallet {wallet} belongs to {state.owner}, not to {me}")
    if state.status not in (HubStatus.CREATED, HubStatus.IDLE):
        raise HubSetupError(f"wallet {wallet} is {state.status.name}: nothing to register")
    txs: dict[str, str] = {}
    short = state.deposit - state.available
    if short > 0:
        payer = funder if funder is not None else owner
        has = system.token.balance_of(sender_address(payer))
        if has < short:
            raise HubSetupError(
                f"the wallet needs {short} token wei more for the deposit of {state.deposit}, "
                f"and {sender_address(payer)} holds {has}"
            )
        txs["fund"] = system.token.transfer(wallet, short, sender=payer).tx_hash
    txs["register"] = hub.register(name, list(multiaddrs), sender=owner).tx_hash
    after = hub.state()
    return Registration(wallet, after.status, after.frozen_funds, txs)
