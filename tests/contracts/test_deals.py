"""Deals: propose (escrow) → accept → close, preterm close split exact to the wei."""

from __future__ import annotations

import pytest

from contracts.client import deploy_contract
from contracts.deals import price_per_second
from contracts.errors import ContractRevert
from contracts.records import DealStatus

from .conftest import World

ZERO = "0x" + "00" * 20
PRICE = 1_234_567_891  # wei per second: odd on purpose, so rounding would show
DURATION = 3_600
REF = bytes(range(32))


def propose(world: World, hub: str, price: int = PRICE, duration: int = DURATION) -> int:
    s = world.system
    s.token.approve(s.deals.address, price * duration, sender=world.consumer)
    deal_id, _ = s.deals.propose(hub, price, duration, REF, sender=world.consumer)
    return deal_id


def test_propose_escrows_price_times_duration(world: World) -> None:
    s = world.system
    w = world.make_hub()
    before = s.token.balance_of(world.consumer)
    s.token.approve(s.deals.address, PRICE * DURATION, sender=world.consumer)
    deal_id, r = s.deals.propose(w.address, PRICE, DURATION, REF, sender=world.consumer)
    ev = r.event("DealProposed")
    assert ev.args["escrow"] == PRICE * DURATION and ev.args["order_ref"] == REF
    assert deal_id == 1 == s.deals.deal_count()
    assert s.token.balance_of(world.consumer) == before - PRICE * DURATION
    assert s.token.balance_of(s.deals.address) == PRICE * DURATION
    d = s.deals.deal(deal_id)
    assert d.status is DealStatus.PENDING and d.consumer == world.consumer
    assert (d.hub, d.price, d.duration, d.escrow, d.order_ref) == (
        w.address,
        PRICE,
        DURATION,
        PRICE * DURATION,
        REF,
    )


def test_propose_reverts(world: World) -> None:
    s = world.system
    w = world.make_hub()
    with pytest.raises(ContractRevert, match="hub is not registered"):
        s.deals.propose(world.hub, PRICE, DURATION, sender=world.consumer)
    with pytest.raises(ContractRevert, match="zero price"):
        s.deals.propose(w.address, 0, DURATION, sender=world.consumer)
    with pytest.raises(ContractRevert, match="zero duration"):
        s.deals.propose(w.address, PRICE, 0, sender=world.consumer)
    with pytest.raises(ContractRevert, match="token: insufficient allowance"):
        s.deals.propose(w.address, PRICE, DURATION, sender=world.consumer)
    with pytest.raises(ValueError, match="order_ref must be 32 bytes"):
        s.deals.propose(w.address, PRICE, DURATION, b"short", sender=world.consumer)
    w.suspect(sender=world.dao)
    s.token.approve(s.deals.address, PRICE * DURATION, sender=world.consumer)
    with pytest.raises(ContractRevert, match="hub is not registered"):
        s.deals.propose(w.address, PRICE, DURATION, sender=world.consumer)


def test_constructor_reverts(world: World) -> None:
    a = world.system.addresses
    with pytest.raises(ContractRevert, match="zero token address"):
        deploy_contract(world.chain, "Deals", ZERO, a.whitelist, sender=world.dao)
    with pytest.raises(ContractRevert, match="zero whitelist address"):
        deploy_contract(world.chain, "Deals", a.token, ZERO, sender=world.dao)


def test_cancel_refunds_a_pending_deal(world: World) -> None:
    s = world.system
    w = world.make_hub()
    before = s.token.balance_of(world.consumer)
    deal_id = propose(world, w.address)
    with pytest.raises(ContractRevert, match="caller is not the consumer"):
        s.deals.cancel(deal_id, sender=world.hub)
    r = s.deals.cancel(deal_id, sender=world.consumer)
    assert r.event("DealClosed").args["refunded"] == PRICE * DURATION
    assert s.token.balance_of(world.consumer) == before
    assert s.deals.deal(deal_id).status is DealStatus.CLOSED
    with pytest.raises(ContractRevert, match="deal is not pending"):
        s.deals.cancel(deal_id, sender=world.consumer)


def test_accept_starts_the_clock(world: World) -> None:
    s = world.system
    w = world.make_hub()
    deal_id = propose(world, w.address)
    with pytest.raises(ContractRevert, match="caller is not the hub owner"):
        s.deals.accept(deal_id, sender=world.consumer)
    r = s.deals.accept(deal_id, sender=world.hub)
    ev = r.event("DealAccepted")
    assert ev.args["end_time"] == ev.args["start_time"] + DURATION
    d = s.deals.deal(deal_id)
    assert d.status is DealStatus.ACCEPTED and d.start_time == ev.args["start_time"]
    with pytest.raises(ContractRevert, match="deal is not pending"):
        s.deals.accept(deal_id, sender=world.hub)
    with pytest.raises(ContractRevert, match="deal is not pending"):
        s.deals.accept(999, sender=world.hub)


def test_accept_refused_once_the_hub_is_suspected(world: World) -> None:
    s = world.system
    w = world.make_hub()
    deal_id = propose(world, w.address)
    w.suspect(sender=world.dao)
    with pytest.raises(ContractRevert, match="hub is not registered"):
        s.deals.accept(deal_id, sender=world.hub)


def test_close_after_the_end_pays_the_hub_wallet_in_full(world: World) -> None:
    s = world.system
    w = world.make_hub()
    deal_id = propose(world, w.address)
    with pytest.raises(ContractRevert, match="deal is not accepted"):
        s.deals.close(deal_id, sender=world.consumer)
    s.deals.accept(deal_id, sender=world.hub)
    with pytest.raises(ContractRevert, match="deal has not ended"):
        s.deals.close(deal_id, sender=world.other)
    world.chain.increase_time(DURATION)
    wallet_before = s.token.balance_of(w.address)
    consumer_before = s.token.balance_of(world.consumer)
    r = s.deals.close(deal_id, sender=world.other)  # anyone, once it ended
    ev = r.event("DealClosed")
    assert (ev.args["paid"], ev.args["refunded"], ev.args["preterm"]) == (
        PRICE * DURATION,
        0,
        False,
    )
    assert s.token.balance_of(w.address) == wallet_before + PRICE * DURATION
    assert s.token.balance_of(world.consumer) == consumer_before
    assert s.token.balance_of(s.deals.address) == 0
    assert w.available() == PRICE * DURATION + 1_000 * 10**18  # income the hub can pay out
    with pytest.raises(ContractRevert, match="deal is not accepted"):
        s.deals.close(deal_id, sender=world.other)


@pytest.mark.parametrize("elapsed", [1, 1_000, DURATION - 1])
def test_preterm_close_splits_exactly_to_the_wei(world: World, elapsed: int) -> None:
    s = world.system
    w = world.make_hub()
    deal_id = propose(world, w.address)
    start = s.deals.accept(deal_id, sender=world.hub).event("DealAccepted").args["start_time"]
    wallet_before = s.token.balance_of(w.address)
    consumer_before = s.token.balance_of(world.consumer)
    world.chain.increase_time(elapsed - 1)  # the close transaction's block adds a second
    r = s.deals.close(deal_id, sender=world.consumer)
    ev = r.event("DealClosed")
    seconds = ev.args["timestamp"] - start
    assert 0 < seconds < DURATION and ev.args["preterm"] is True
    paid = PRICE * seconds
    refund = PRICE * DURATION - paid
    assert (ev.args["paid"], ev.args["refunded"]) == (paid, refund)
    assert s.token.balance_of(w.address) - wallet_before == paid
    assert s.token.balance_of(world.consumer) - consumer_before == refund
    assert s.token.balance_of(s.deals.address) == 0  # not one wei left behind
    d = s.deals.deal(deal_id)
    assert (d.status, d.paid, d.refunded) == (DealStatus.CLOSED, paid, refund)


def test_close_refunds_everything_when_the_hub_was_banned(world: World) -> None:
    s = world.system
    w = world.make_hub()
    consumer_before = s.token.balance_of(world.consumer)
    deal_id = propose(world, w.address)
    s.deals.accept(deal_id, sender=world.hub)
    w.suspect(sender=world.dao)
    world.chain.increase_time(DURATION)
    w.ban(sender=world.dao)
    ev = s.deals.close(deal_id, sender=world.other).event("DealClosed")
    assert (ev.args["paid"], ev.args["refunded"]) == (0, PRICE * DURATION)
    assert s.token.balance_of(world.consumer) == consumer_before
    assert s.token.balance_of(w.address) == 0


def test_price_per_second_conversion() -> None:
    assert price_per_second(7_200) == 2
    for bad in (0, -3_600, 3_601):
        with pytest.raises(ValueError, match="price_per_hour"):
            price_per_second(bad)
