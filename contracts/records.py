"""Statuses and records shared by the wrappers, the verifier and the CLI."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class HubStatus(enum.IntEnum):
    """HubWallet states; the Whitelist mirrors them (0 there means never registered)."""

    CREATED = 0
    REGISTERED = 1
    IDLE = 2
    SUSPECTED = 3
    PUNISHED = 4


class DealStatus(enum.IntEnum):
    NONE = 0
    PENDING = 1
    ACCEPTED = 2
    CLOSED = 3


@dataclass(frozen=True)
class HubRecord:
    """A hub's row in the Whitelist."""

    wallet: str
    owner: str
    name: str
    multiaddrs: tuple[str, ...]
    status: HubStatus
    registered_at: int
    updated_at: int
    trusted: bool

    @property
    def registered(self) -> bool:
        return self.registered_at != 0


@dataclass(frozen=True)
class WalletState:
    """What a HubWallet holds and under which rules."""

    address: str
    owner: str
    status: HubStatus
    balance: int
    frozen_funds: int
    locked_funds: int
    owed_total: int
    available: int
    next_payday: int
    suspected_at: int
    payout_count: int
    paid_total: int
    deposit: int
    lock_bps: int
    payout_period: int
    waiting_period: int


@dataclass(frozen=True)
class Deal:
    deal_id: int
    consumer: str
    hub: str
    price: int
    duration: int
    escrow: int
    status: DealStatus
    proposed_at: int
    start_time: int
    end_time: int
    paid: int
    refunded: int
    order_ref: bytes


@dataclass(frozen=True)
class Payout:
    """One MinerPaid event: the hub paid a miner, keeping lock_fee for the period."""

    wallet: str
    miner: str
    amount: int
    payout: int
    lock_fee: int
    timestamp: int
    block_number: int


MULTIADDR_SEPARATOR = ","


def join_multiaddrs(addrs: tuple[str, ...] | list[str]) -> str:
    for a in addrs:
        if MULTIADDR_SEPARATOR in a:
            raise ValueError(f"multiaddr {a!r} contains {MULTIADDR_SEPARATOR!r}")
    return MULTIADDR_SEPARATOR.join(addrs)


def split_multiaddrs(text: str) -> tuple[str, ...]:
    return tuple(a for a in text.split(MULTIADDR_SEPARATOR) if a)
