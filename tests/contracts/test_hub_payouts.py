"""A hub's payouts survive a crash at every step, on a real chain (anvil over
JSON-RPC) and a real SQLite file: the hub writes each payout down before sending
it, and on restart settles what it wrote against the chain, so a worker is paid
each period exactly once.

The crash is the process stopping between two of the steps the payout loop runs
(payouts.py: prepare, send, settle): the test runs the same steps, stops where
the hub would have died, closes the database and starts a new HubPayouts on it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from eth_account import Account

from contracts.anvil import dev_private_keys
from contracts.hubwallet import HubWallet
from p2pnode.storage import Storage
from p2pnode.worker.payouts import HubPayouts
from p2pnode.worker.registry import WorkerRegistry, worker_id
from tests.contracts.conftest import World
from tests.hardware.test_detect import h200_record

RATE = 3_600 * 10**15  # wei per hour: 10**15 per second joined
PERIOD = 3_600
T0 = 1_000_000.0


async def _direct(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """MarketService.chain_call without the node: the call, in a worker thread."""
    return await trio.to_thread.run_sync(lambda: fn(*args, **kwargs))


class Hub:
    """What a hub process holds: its database, registry and payouts, on one clock."""

    def __init__(self, db: Path, wallet: HubWallet, now: float) -> None:
        self.storage = Storage(db)
        self.registry = WorkerRegistry(self.storage)
        self.now = now
        self.wallet = wallet
        self.account = Account.from_key(dev_private_keys(2)[1])
        self.payouts = HubPayouts(
            self.registry,
            wallet=wallet.address,
            connect=lambda: (wallet, self.account),
            chain_call=_direct,
            clock=lambda: self.now,
            receipt_timeout=0.5,
        )
        self.payouts.load()

    def crash(self) -> None:
        self.storage.close()


def _setup(world: World, tmp_path: Path) -> tuple[Hub, HubWallet, str]:
    wallet = world.make_hub()
    hub = Hub(tmp_path / "node.sqlite3", wallet, T0 + PERIOD)
    record = json.dumps(h200_record(tmp_path).to_dict(), sort_keys=True)
    hub.registry.join(
        worker_id(bytes.fromhex(world.miner[2:])),
        peer_id="12D3KooWpeer",
        addr="/ip4/127.0.0.1/tcp/4002",
        hardware_json=record,
        pay_per_hour=RATE,
        payout_period=PERIOD,
        at=T0,
        request=b"signed join",
        answer=b"signed answer",
    )
    return hub, wallet, worker_id(bytes.fromhex(world.miner[2:]))


def _paid_on_chain(wallet: HubWallet, miner: str) -> list[int]:
    return [p.amount for p in wallet.payouts() if p.miner.lower() == miner]


def _step(hub: Hub, upto: str) -> None:
    """The payout loop's steps for the worker's first payday, up to `upto`, then stop."""
    member = hub.registry.members()[0]
    intent = hub.payouts.prepare(hub.wallet, hub.account, member, T0 + PERIOD, RATE, hub.now)
    if upto == "send":
        hub.payouts.send(hub.wallet, intent)


def test_a_hub_that_dies_right_after_sending_pays_once(anvil_world: World, tmp_path: Path) -> None:
    hub, wallet, miner = _setup(anvil_world, tmp_path)
    _step(hub, "send")
    hub.crash()  # the transfer is mined; no payout row was written
    assert _paid_on_chain(wallet, miner) == [RATE]

    hub = Hub(tmp_path / "node.sqlite3", wallet, T0 + PERIOD + 10)
    assert hub.registry.members()[0].owed(hub.now) == RATE + 10 * 10**15
    assert [i.state for i in hub.registry.pending_intents()] == ["pending"]
    assert trio.run(hub.payouts.reconcile) == {"paid": 1, "void": 0, "pending": 0}
    member = hub.registry.members()[0]
    assert member.paid == RATE and hub.registry.pending_intents() == []
    assert hub.registry.payouts()[0]["amount"] == str(RATE)
    # the payout round right after the restart: this period is paid, nothing goes out
    assert trio.run(hub.payouts.pay_due) == 0
    assert _paid_on_chain(wallet, miner) == [RATE]
    # the next payday pays the next period, once
    hub.now = T0 + 2 * PERIOD
    assert trio.run(hub.payouts.pay_due) == 1
    assert trio.run(hub.payouts.pay_due) == 0
    assert _paid_on_chain(wallet, miner) == [RATE, RATE]
    assert hub.registry.members()[0].owed(hub.now) == 0
    assert wallet.owed(anvil_world.miner) == 2 * RATE * 9 // 10  # less the 10 % lock fee
    assert [i.state for i in hub.registry.intents(member.id)] == ["paid", "paid"]


def test_a_hub_that_dies_before_sending_sends_the_same_transfer_on_restart(
    anvil_world: World, tmp_path: Path
) -> None:
    hub, wallet, miner = _setup(anvil_world, tmp_path)
    _step(hub, "prepare")
    hub.crash()  # written down, never sent
    assert _paid_on_chain(wallet, miner) == []

    hub = Hub(tmp_path / "node.sqlite3", wallet, T0 + PERIOD + 10)
    intent = hub.registry.pending_intents()[0]
    assert trio.run(hub.payouts.reconcile) == {"paid": 1, "void": 0, "pending": 0}
    assert _paid_on_chain(wallet, miner) == [RATE]
    assert hub.registry.payouts()[0]["tx"] == intent.tx  # the very transaction signed
    assert trio.run(hub.payouts.pay_due) == 0
    assert _paid_on_chain(wallet, miner) == [RATE]


def test_a_payout_whose_nonce_went_to_another_transaction_is_paid_anew_once(
    anvil_world: World, tmp_path: Path
) -> None:
    hub, wallet, miner = _setup(anvil_world, tmp_path)
    _step(hub, "prepare")
    hub.crash()
    # after the restart another service of the node sends first and takes the nonce
    anvil_world.system.token.approve(anvil_world.other, 1, sender=hub.account)

    hub = Hub(tmp_path / "node.sqlite3", wallet, T0 + PERIOD + 10)
    first = hub.registry.pending_intents()[0]
    assert trio.run(hub.payouts.reconcile) == {"paid": 0, "void": 1, "pending": 0}
    assert "nonce" in hub.registry.intent(first.id).why  # type: ignore[union-attr]
    assert _paid_on_chain(wallet, miner) == []
    # still owed: the payout round pays it with a new intent for the same period
    assert trio.run(hub.payouts.pay_due) == 1
    assert trio.run(hub.payouts.pay_due) == 0
    assert _paid_on_chain(wallet, miner) == [RATE + 10 * 10**15]
    member = hub.registry.members()[0]
    intents = hub.registry.intents(member.id)
    assert [(i.payday, i.attempt, i.state) for i in intents] == [
        (T0 + PERIOD, 0, "void"),
        (T0 + PERIOD, 1, "paid"),
    ]
    assert intents[0].id != intents[1].id
    assert member.owed(hub.now) == 0


def test_a_payout_not_mined_yet_holds_the_worker_back_until_it_is(
    anvil_world: World, tmp_path: Path
) -> None:
    """A restart while the transfer waits in the node's pool: sent again (harmless),
    the worker gets no second payout, and the mined transfer is recorded once."""
    chain = anvil_world.chain
    hub, wallet, miner = _setup(anvil_world, tmp_path)
    chain._rpc("evm_setAutomine", [False])
    try:
        _step(hub, "send")
        hub.crash()
        hub = Hub(tmp_path / "node.sqlite3", wallet, T0 + PERIOD + 10)
        assert trio.run(hub.payouts.reconcile) == {"paid": 0, "void": 0, "pending": 1}
        assert trio.run(hub.payouts.pay_due) == 0  # its payout is pending: nothing new
        assert len(hub.registry.pending_intents()) == 1
        chain._rpc("evm_mine", [])
    finally:
        chain._rpc("evm_setAutomine", [True])
    assert trio.run(hub.payouts.reconcile) == {"paid": 1, "void": 0, "pending": 0}
    assert trio.run(hub.payouts.pay_due) == 0
    assert _paid_on_chain(wallet, miner) == [RATE]
    assert hub.registry.members()[0].paid == RATE


def test_an_intent_for_a_paid_period_is_refused(anvil_world: World, tmp_path: Path) -> None:
    """The database, not only the schedule, keeps a period from being paid twice."""
    hub, _, _ = _setup(anvil_world, tmp_path)
    _step(hub, "send")
    with pytest.raises(ValueError, match="pending already"):
        _step(hub, "prepare")
    assert trio.run(hub.payouts.reconcile)["paid"] == 1
    with pytest.raises(ValueError, match="paid already"):
        _step(hub, "prepare")
