"""A proposal the hub does not accept in time is cancelled by the consumer's node and
the escrow comes back: the market service's chain upkeep on a real chain (eth-tester,
in process) under a virtual clock, with a hub that never accepts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from eth_account import Account

from contracts.chain import embedded_chain
from contracts.params import SNM
from p2pnode.market.dealsvc import MarketParams, MarketService
from p2pnode.storage import Storage
from tests.contracts.conftest import World, make_world

CONSUMER_KEY = bytes.fromhex("8da4ef21b864d2cc526dbdb2a120bd2874c36c9d0a1fb7f8c63d7f7a8b41de8f")
ACCEPT_TIMEOUT = 5.0
PRICE = 10**12  # wei per second
DURATION = 600
ASK_ID = b"\x0a" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    w = make_world(embedded_chain())
    consumer = Account.from_key(CONSUMER_KEY).address
    w.chain.w3.eth.send_transaction({"from": w.dao, "to": consumer, "value": 10**18})
    w.system.token.transfer(consumer, 1_000 * SNM, sender=w.dao)
    yield w
    w.chain.close()


def _consumer(world: World, tmp_path: Path, clock: Clock) -> MarketService:
    return MarketService(
        None,
        Storage.open_in(tmp_path),
        None,  # no order desk: the deal is proposed below, as `_negotiate` does
        world.system,
        hub_wallet=None,
        data_dir=tmp_path,
        params=MarketParams(accept_timeout=ACCEPT_TIMEOUT),
        addrs=list,
        private_key=CONSUMER_KEY,
        clock=clock,
    )


def test_a_proposal_not_accepted_in_time_is_cancelled_and_refunded(
    world: World, tmp_path: Path
) -> None:
    token, deals = world.system.token, world.system.deals
    wallet = world.make_hub()  # registered; its owner never accepts
    clock = Clock()
    svc = _consumer(world, tmp_path, clock)
    me = svc.account.address
    before = token.balance_of(me)

    async def main() -> None:
        deal_id = await svc._chain(svc._propose, wallet.address, PRICE, DURATION, ASK_ID)
        assert token.balance_of(me) == before - PRICE * DURATION  # escrowed
        clock.now = float(world.chain.now())
        await svc.chain_upkeep()  # the proposal comes back from the registry's events
        row = svc.store.deal(deal_id)
        assert row is not None and row.role == "consumer" and row.status == "pending"

        clock.now = row.proposed_at + ACCEPT_TIMEOUT  # not yet past the timeout
        await svc.chain_upkeep()
        assert int(deals.deal(deal_id).status) == 1
        assert svc.counters["cancelled"] == 0

        clock.now = row.proposed_at + ACCEPT_TIMEOUT + 1
        await svc.chain_upkeep()
        on_chain = deals.deal(deal_id)
        assert int(on_chain.status) == 3  # closed by the consumer's cancel
        assert on_chain.refunded == on_chain.escrow == PRICE * DURATION and on_chain.paid == 0
        assert token.balance_of(me) == before  # every wei of the escrow is back
        assert svc.counters["cancelled"] == 1
        mirrored = svc.store.deal(deal_id)
        assert mirrored is not None and mirrored.status == "closed"
        assert mirrored.refunded == PRICE * DURATION
        [ev] = [e for e in deals.events(names=["DealClosed"]) if e.args["deal_id"] == deal_id]
        assert ev.args["refunded"] == PRICE * DURATION and ev.args["paid"] == 0

        clock.now += 60  # later rounds leave the closed deal alone
        await svc.chain_upkeep()
        assert svc.counters["cancelled"] == 1

    trio.run(main)


def test_a_proposal_accepted_in_time_is_not_cancelled(world: World, tmp_path: Path) -> None:
    deals = world.system.deals
    wallet = world.make_hub(name="hub-b")
    clock = Clock()
    svc = _consumer(world, tmp_path, clock)

    async def main() -> None:
        deal_id = await svc._chain(svc._propose, wallet.address, PRICE, DURATION, ASK_ID)
        clock.now = float(world.chain.now())
        await svc.chain_upkeep()
        deals.accept(deal_id, sender=world.hub)  # the hub accepts before the timeout
        row = svc.store.deal(deal_id)
        assert row is not None
        clock.now = row.proposed_at + ACCEPT_TIMEOUT + 1
        await svc.chain_upkeep()
        assert int(deals.deal(deal_id).status) == 2
        assert svc.counters["cancelled"] == 0
        mirrored = svc.store.deal(deal_id)
        assert mirrored is not None and mirrored.status == "accepted"

    trio.run(main)
