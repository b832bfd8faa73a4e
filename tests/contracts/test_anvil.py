"""The same system deployed and exercised on anvil, over JSON-RPC."""

from __future__ import annotations

import pytest
from eth_account import Account

from contracts.anvil import AnvilProcess, dev_private_keys
from contracts.chain import rpc_chain
from contracts.deploy import System, SystemAddresses, deploy_system
from contracts.errors import ChainUnavailable, ContractRevert
from contracts.records import DealStatus, HubStatus
from contracts.verify import HubVerdict, HubVerifier, VerifierParams

from .conftest import SNM, TEST_PARAMS, World

pytestmark = pytest.mark.anvil


def test_hub_story_on_anvil(anvil_world: World) -> None:
    world = anvil_world
    s = world.system
    w = world.make_hub(fund=TEST_PARAMS.deposit + 1_000 * SNM)
    assert s.whitelist.hub(w.address).status is HubStatus.REGISTERED
    w.transfer(world.miner, 100 * SNM, sender=world.hub)
    with pytest.raises(ContractRevert, match="payout period not over"):
        w.payday(sender=world.hub)
    world.chain.increase_time(TEST_PARAMS.payout_period)
    dao_before = s.token.balance_of(world.dao)
    assert w.payday(sender=world.hub).event("Payday").args["to_dao"] == 10 * SNM
    assert s.token.balance_of(world.dao) == dao_before + 10 * SNM
    w.suspect(sender=world.dao)
    with pytest.raises(ContractRevert, match="waiting period not over"):
        w.ban(sender=world.dao)
    world.chain.increase_time(TEST_PARAMS.waiting_period)
    balance = s.token.balance_of(w.address)
    assert w.ban(sender=world.dao).event("Banned").args["to_dao"] == balance
    assert s.whitelist.status_of(w.address) is HubStatus.PUNISHED


def test_deal_preterm_close_on_anvil(anvil_world: World) -> None:
    world = anvil_world
    s = world.system
    w = world.make_hub()
    price, duration = 987_654_321, 7_200
    s.token.approve(s.deals.address, price * duration, sender=world.consumer)
    deal_id, _ = s.deals.propose(w.address, price, duration, sender=world.consumer)
    start = s.deals.accept(deal_id, sender=world.hub).event("DealAccepted").args["start_time"]
    world.chain.increase_time(1_000)
    consumer_before = s.token.balance_of(world.consumer)
    ev = s.deals.close(deal_id, sender=world.consumer).event("DealClosed")
    paid = price * (ev.args["timestamp"] - start)
    assert (ev.args["paid"], ev.args["refunded"]) == (paid, price * duration - paid)
    assert s.token.balance_of(world.consumer) == consumer_before + price * duration - paid
    assert s.deals.deal(deal_id).status is DealStatus.CLOSED


def test_verification_on_anvil(anvil_world: World) -> None:
    world = anvil_world
    w = world.make_hub()
    verifier = HubVerifier(
        world.system, VerifierParams(min_frozen_funds=TEST_PARAMS.deposit, ttl=3_600.0)
    )
    assert verifier.verify(w.address, world.hub).verdict is HubVerdict.ACCEPT
    assert verifier.verify(world.other, world.other).verdict is HubVerdict.REJECT
    w.suspect(sender=world.dao)
    assert w.address in verifier.poll()
    assert verifier.verify(w.address, world.hub).verdict is HubVerdict.MARK


def test_revert_errors_are_the_same_on_both_backends(world: World, anvil_world: World) -> None:
    """The same bad call gives the same exception type and reason on either chain."""
    reasons = []
    for wd in (world, anvil_world):
        address, _ = wd.system.factory.create_wallet(sender=wd.hub)
        wallet = wd.system.wallet(address)
        for call in (
            lambda wd=wd: wd.system.token.transfer(wd.dao, 1, sender=wd.other),  # transaction
            lambda wallet=wallet, wd=wd: wallet.register("x", [], sender=wd.other),
            lambda wd=wd: wd.system.whitelist.register_hub(wd.hub, "x", [], sender=wd.hub),
        ):
            with pytest.raises(ContractRevert) as e:
                call()
            reasons.append(e.value.reason)
    half = len(reasons) // 2
    assert reasons[:half] == reasons[half:]
    assert reasons[:half] == [
        "token: insufficient balance",
        "wallet: caller is not the owner",
        "whitelist: not a factory wallet",
    ]


def test_views_on_a_plain_account_fail_the_same_way(world: World, anvil_world: World) -> None:
    from contracts.errors import ChainError
    from contracts.snm import Token

    for wd in (world, anvil_world):
        with pytest.raises(ChainError, match="no contract code"):
            Token(wd.chain, wd.other).balance_of(wd.hub)


def test_signed_transactions_from_a_local_key(anvil_world: World) -> None:
    """A node that holds its own key (not an unlocked node account) signs locally."""
    world = anvil_world
    key = dev_private_keys(2)[1]
    account = Account.from_key(key)
    assert account.address == world.hub
    address, _ = world.system.factory.create_wallet(sender=account)
    assert world.system.wallet(address).owner() == world.hub
    with pytest.raises(ContractRevert, match="caller is not the owner"):
        world.system.wallet(address).register(
            "x", [], sender=Account.from_key(dev_private_keys(3)[2])
        )


def test_deploy_writes_an_addresses_file_that_connects(anvil: AnvilProcess, tmp_path) -> None:
    chain = rpc_chain(anvil.url)
    path = tmp_path / "addresses.json"
    deployed = deploy_system(chain, params=TEST_PARAMS, out=path)
    loaded = SystemAddresses.load(path)
    assert loaded == deployed and loaded.chain_id == 31337
    system = System.connect(rpc_chain(anvil.url), loaded)
    assert system.factory.deposit() == TEST_PARAMS.deposit
    assert system.whitelist.factory() == loaded.factory


def test_unreachable_endpoint_is_a_clear_error() -> None:
    from contracts.anvil import free_port

    with pytest.raises(ChainUnavailable, match="unreachable"):
        rpc_chain(f"http://127.0.0.1:{free_port()}", timeout=1.0)
    with pytest.raises(ChainUnavailable, match="http"):
        rpc_chain("ftp://127.0.0.1:1")
