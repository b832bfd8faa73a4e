"""HubWalletFactory and HubWallet: each function's happy path and each revert, and the
whole hub story (register → pay miners → payday; suspect → ban; suspect → rehab)."""

from __future__ import annotations

import pytest

from contracts.client import deploy_contract
from contracts.errors import ContractRevert
from contracts.records import HubStatus

from .conftest import SNM, TEST_PARAMS, World

DEPOSIT = TEST_PARAMS.deposit
ZERO = "0x" + "00" * 20


# -- factory ---------------------------------------------------------------------------


def test_factory_creates_wallets_with_its_rules(world: World) -> None:
    f = world.system.factory
    n = f.wallet_count()
    address, r = f.create_wallet(sender=world.hub)
    ev = r.event("WalletCreated")
    assert (ev.args["owner"], ev.args["index"]) == (world.hub, n)
    assert f.is_wallet(address) and f.wallet_at(n) == address and f.wallet_count() == n + 1
    assert not f.is_wallet(world.hub)
    st = world.system.wallet(address).state()
    assert st.owner == world.hub and st.status is HubStatus.CREATED
    assert (st.deposit, st.lock_bps, st.payout_period, st.waiting_period) == (
        f.deposit(),
        f.lock_bps(),
        f.payout_period(),
        f.waiting_period(),
    )
    assert f.deposit() == DEPOSIT


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"blueprint": ZERO}, "factory: zero blueprint address"),
        ({"token": ZERO}, "factory: zero token address"),
        ({"whitelist": ZERO}, "factory: zero whitelist address"),
        ({"dao": ZERO}, "factory: zero DAO address"),
        ({"deposit": 0}, "factory: deposit must be positive"),
        ({"lock_bps": 10_001}, "factory: lock_bps above 10000"),
        ({"payout_period": 0}, "factory: payout period must be positive"),
    ],
)
def test_factory_constructor_reverts(world: World, change: dict[str, object], reason: str) -> None:
    a = world.system.addresses
    args: dict[str, object] = {
        "blueprint": a.hub_wallet_blueprint,
        "token": a.token,
        "whitelist": a.whitelist,
        "dao": a.dao,
        "deposit": 1,
        "lock_bps": 0,
        "payout_period": 1,
        "waiting_period": 0,
    }
    args.update(change)
    with pytest.raises(ContractRevert) as e:
        deploy_contract(world.chain, "HubWalletFactory", *args.values(), sender=world.dao)
    assert e.value.reason == reason


# -- register --------------------------------------------------------------------------


def test_register_freezes_the_deposit_and_lists_the_hub(world: World) -> None:
    s = world.system
    address, _ = s.factory.create_wallet(sender=world.hub)
    s.token.transfer(address, DEPOSIT + 5 * SNM, sender=world.dao)
    w = s.wallet(address)
    r = w.register("hub-a", ["/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/udp/2"], sender=world.hub)
    names = [e.name for e in r.events]
    assert {"Registered", "HubRegistered", "HubStatusChanged", "StatusChanged"} <= set(names)
    st = w.state()
    assert st.status is HubStatus.REGISTERED
    assert st.frozen_funds == DEPOSIT and st.available == 5 * SNM
    assert st.next_payday == r.event("Registered").args["timestamp"] + TEST_PARAMS.payout_period
    hub = s.whitelist.hub(address)
    assert hub.owner == world.hub and hub.status is HubStatus.REGISTERED
    assert hub.multiaddrs == ("/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/udp/2")
    assert s.whitelist.hubs()[-1] == hub


def test_register_reverts(world: World) -> None:
    s = world.system
    address, _ = s.factory.create_wallet(sender=world.hub)
    w = s.wallet(address)
    with pytest.raises(ContractRevert, match="caller is not the owner"):
        w.register("x", [], sender=world.other)
    s.token.transfer(address, DEPOSIT - 1, sender=world.dao)
    with pytest.raises(ContractRevert, match="balance below the deposit"):
        w.register("x", [], sender=world.hub)
    s.token.transfer(address, 1, sender=world.dao)
    with pytest.raises(ContractRevert, match="whitelist: empty hub name"):
        w.register("", [], sender=world.hub)  # the Whitelist's reason comes back through
    w.register("x", [], sender=world.hub)
    with pytest.raises(ContractRevert, match="cannot register in this state"):
        w.register("x", [], sender=world.hub)


# -- transfer / claim -------------------------------------------------------------------


def test_transfer_locks_the_fee_and_credits_the_miner(world: World) -> None:
    w = world.make_hub(fund=DEPOSIT + 500 * SNM)
    amount = 123 * SNM + 7
    r = w.transfer(world.miner, amount, sender=world.hub)
    fee = amount * TEST_PARAMS.lock_bps // 10_000
    ev = r.event("MinerPaid")
    assert (ev.args["amount"], ev.args["payout"], ev.args["lock_fee"]) == (
        amount,
        amount - fee,
        fee,
    )
    st = w.state()
    assert st.locked_funds == fee and st.owed_total == amount - fee
    assert st.available == 500 * SNM - amount
    assert st.payout_count == 1 and st.paid_total == amount - fee
    assert w.owed(world.miner) == amount - fee
    r = w.claim(sender=world.miner)
    assert r.event("Claimed").args["amount"] == amount - fee
    assert world.system.token.balance_of(world.miner) == amount - fee
    assert w.owed(world.miner) == 0 and w.state().owed_total == 0


def test_transfer_reverts(world: World) -> None:
    s = world.system
    address, _ = s.factory.create_wallet(sender=world.hub)
    s.token.transfer(address, DEPOSIT + 10 * SNM, sender=world.dao)
    w = s.wallet(address)
    with pytest.raises(ContractRevert, match="hub is not registered"):
        w.transfer(world.miner, SNM, sender=world.hub)
    w.register("x", [], sender=world.hub)
    with pytest.raises(ContractRevert, match="caller is not the owner"):
        w.transfer(world.miner, SNM, sender=world.other)
    with pytest.raises(ContractRevert, match="zero miner address"):
        w.transfer(ZERO, SNM, sender=world.hub)
    with pytest.raises(ContractRevert, match="zero amount"):
        w.transfer(world.miner, 0, sender=world.hub)
    with pytest.raises(ContractRevert, match="insufficient available funds"):
        w.transfer(world.miner, 10 * SNM + 1, sender=world.hub)  # the deposit stays frozen
    w.transfer(world.miner, 10 * SNM, sender=world.hub)
    assert w.available() == 0


def test_claim_reverts(world: World) -> None:
    w = world.make_hub()
    with pytest.raises(ContractRevert, match="nothing owed"):
        w.claim(sender=world.miner)
    w.transfer(world.miner, SNM, sender=world.hub)
    w.suspect(sender=world.dao)
    with pytest.raises(ContractRevert, match="funds are blocked"):
        w.claim(sender=world.miner)


# -- payday / unregister / withdraw -------------------------------------------------------


def test_payday_pays_the_locked_share_to_the_dao(world: World) -> None:
    w = world.make_hub(fund=DEPOSIT + 1_000 * SNM)
    w.transfer(world.miner, 100 * SNM, sender=world.hub)
    w.transfer(world.other, 50 * SNM, sender=world.hub)
    locked = w.locked_funds()
    assert locked == 15 * SNM
    with pytest.raises(ContractRevert, match="payout period not over"):
        w.payday(sender=world.hub)
    world.chain.increase_time(TEST_PARAMS.payout_period)
    dao_before = world.system.token.balance_of(world.dao)
    r = w.payday(sender=world.other)  # anyone may trigger it
    ev = r.event("Payday")
    assert ev.args["to_dao"] == locked
    assert ev.args["next_payday"] == ev.args["timestamp"] + TEST_PARAMS.payout_period
    assert world.system.token.balance_of(world.dao) == dao_before + locked
    st = w.state()
    assert st.locked_funds == 0 and st.frozen_funds == DEPOSIT
    assert st.available == 1_000 * SNM - 150 * SNM  # the miners' credit is still theirs
    with pytest.raises(ContractRevert, match="payout period not over"):
        w.payday(sender=world.hub)


def test_payday_blocked_while_suspected(world: World) -> None:
    w = world.make_hub()
    w.suspect(sender=world.dao)
    world.chain.increase_time(TEST_PARAMS.payout_period)
    with pytest.raises(ContractRevert, match="funds are blocked"):
        w.payday(sender=world.hub)


def test_unregister_releases_the_deposit_and_allows_reregistering(world: World) -> None:
    w = world.make_hub(fund=DEPOSIT + 100 * SNM)
    w.transfer(world.miner, 10 * SNM, sender=world.hub)
    with pytest.raises(ContractRevert, match="lock fees pending"):
        w.unregister(sender=world.hub)
    with pytest.raises(ContractRevert, match="caller is not the owner"):
        w.unregister(sender=world.other)
    world.chain.increase_time(TEST_PARAMS.payout_period)
    w.payday(sender=world.hub)
    w.unregister(sender=world.hub)
    st = w.state()
    assert st.status is HubStatus.IDLE and st.frozen_funds == 0
    assert world.system.whitelist.status_of(w.address) is HubStatus.IDLE
    with pytest.raises(ContractRevert, match="hub is not registered"):
        w.unregister(sender=world.hub)
    w.register("hub-a2", ["/dns4/x/tcp/1"], sender=world.hub)
    assert world.system.whitelist.hub(w.address).name == "hub-a2"
    assert world.system.whitelist.hub_count() == 1  # listed once, whatever the re-registrations


def test_withdraw(world: World) -> None:
    w = world.make_hub(fund=DEPOSIT + 100 * SNM)
    r = w.withdraw(world.other, 40 * SNM, sender=world.hub)
    assert r.event("Withdrawn").args["amount"] == 40 * SNM
    assert world.system.token.balance_of(world.other) == 40 * SNM
    with pytest.raises(ContractRevert, match="caller is not the owner"):
        w.withdraw(world.other, 1, sender=world.other)
    with pytest.raises(ContractRevert, match="zero receiver address"):
        w.withdraw(ZERO, 1, sender=world.hub)
    with pytest.raises(ContractRevert, match="zero amount"):
        w.withdraw(world.other, 0, sender=world.hub)
    with pytest.raises(ContractRevert, match="insufficient available funds"):
        w.withdraw(world.other, 60 * SNM + 1, sender=world.hub)
    w.suspect(sender=world.dao)
    with pytest.raises(ContractRevert, match="funds are blocked"):
        w.withdraw(world.other, 1, sender=world.hub)


# -- DAO: suspect / rehab / ban --------------------------------------------------------


def test_suspect_and_rehab(world: World) -> None:
    w = world.make_hub(fund=DEPOSIT + 100 * SNM)
    w.transfer(world.miner, 10 * SNM, sender=world.hub)
    with pytest.raises(ContractRevert, match="caller is not the DAO"):
        w.suspect(sender=world.hub)
    with pytest.raises(ContractRevert, match="hub is not suspected"):
        w.rehab(sender=world.dao)
    r = w.suspect(sender=world.dao)
    assert r.event("HubStatusChanged").args["new_status"] == HubStatus.SUSPECTED
    assert w.state().suspected_at == r.event("StatusChanged").args["timestamp"]
    assert world.system.whitelist.status_of(w.address) is HubStatus.SUSPECTED
    with pytest.raises(ContractRevert, match="cannot suspect in this state"):
        w.suspect(sender=world.dao)
    with pytest.raises(ContractRevert, match="hub is not registered"):
        w.transfer(world.miner, SNM, sender=world.hub)
    with pytest.raises(ContractRevert, match="caller is not the DAO"):
        w.rehab(sender=world.hub)
    w.rehab(sender=world.dao)
    st = w.state()
    assert st.status is HubStatus.REGISTERED and st.suspected_at == 0
    assert world.system.whitelist.status_of(w.address) is HubStatus.REGISTERED
    w.claim(sender=world.miner)  # funds flow again
    w.transfer(world.miner, SNM, sender=world.hub)


def test_rehab_returns_an_idle_hub_to_idle(world: World) -> None:
    w = world.make_hub()
    w.unregister(sender=world.hub)
    w.suspect(sender=world.dao)
    w.rehab(sender=world.dao)
    assert w.status() is HubStatus.IDLE


def test_suspect_reverts_on_a_fresh_wallet(world: World) -> None:
    address, _ = world.system.factory.create_wallet(sender=world.hub)
    with pytest.raises(ContractRevert, match="cannot suspect in this state"):
        world.system.wallet(address).suspect(sender=world.dao)


def test_ban_after_the_waiting_period_sends_everything_to_the_dao(world: World) -> None:
    s = world.system
    w = world.make_hub(fund=DEPOSIT + 300 * SNM)
    w.transfer(world.miner, 100 * SNM, sender=world.hub)
    with pytest.raises(ContractRevert, match="hub is not suspected"):
        w.ban(sender=world.dao)
    w.suspect(sender=world.dao)
    with pytest.raises(ContractRevert, match="waiting period not over"):
        w.ban(sender=world.dao)
    world.chain.increase_time(TEST_PARAMS.waiting_period)
    with pytest.raises(ContractRevert, match="caller is not the DAO"):
        w.ban(sender=world.hub)
    balance = s.token.balance_of(w.address)
    dao_before = s.token.balance_of(world.dao)
    r = w.ban(sender=world.dao)
    assert r.event("Banned").args["to_dao"] == balance == DEPOSIT + 300 * SNM
    assert s.token.balance_of(world.dao) == dao_before + balance
    assert s.token.balance_of(w.address) == 0
    st = w.state()
    assert st.status is HubStatus.PUNISHED
    assert (st.frozen_funds, st.locked_funds, st.owed_total) == (0, 0, 0)
    assert s.whitelist.status_of(w.address) is HubStatus.PUNISHED
    # the owner is locked out of everything, and so is the unpaid miner
    s.token.transfer(w.address, DEPOSIT, sender=world.dao)
    for call, reason in [
        (lambda: w.register("x", [], sender=world.hub), "cannot register in this state"),
        (lambda: w.transfer(world.miner, 1, sender=world.hub), "hub is not registered"),
        (lambda: w.withdraw(world.hub, 1, sender=world.hub), "funds are blocked"),
        (lambda: w.unregister(sender=world.hub), "hub is not registered"),
        (lambda: w.payday(sender=world.hub), "funds are blocked"),
        (lambda: w.claim(sender=world.miner), "funds are blocked"),
        (lambda: w.rehab(sender=world.dao), "hub is not suspected"),
        (lambda: w.suspect(sender=world.dao), "cannot suspect in this state"),
        (
            lambda: s.whitelist.update_hub(w.address, "x", [], sender=world.hub),
            "whitelist: hub is punished",
        ),
    ]:
        with pytest.raises(ContractRevert) as e:
            call()
        assert e.value.reason.endswith(reason)


def test_full_hub_story(world: World) -> None:
    """factory → register → pay miners with lock fee → payday, then a second period."""
    s = world.system
    w = world.make_hub(fund=DEPOSIT + 10_000 * SNM)
    dao0 = s.token.balance_of(world.dao)
    for miner, amount in [(world.miner, 1_000 * SNM), (world.other, 3_000 * SNM)]:
        w.transfer(miner, amount, sender=world.hub)
    world.chain.increase_time(TEST_PARAMS.payout_period)
    w.payday(sender=world.hub)
    assert s.token.balance_of(world.dao) == dao0 + 400 * SNM
    w.claim(sender=world.miner)
    w.claim(sender=world.other)
    assert s.token.balance_of(world.miner) == 900 * SNM
    assert s.token.balance_of(world.other) == 2_700 * SNM
    w.transfer(world.miner, 5_000 * SNM, sender=world.hub)
    world.chain.increase_time(TEST_PARAMS.payout_period)
    w.payday(sender=world.hub)
    assert s.token.balance_of(world.dao) == dao0 + 900 * SNM
    st = w.state()
    assert st.balance == DEPOSIT + 10_000 * SNM - 3_600 * SNM - 900 * SNM
    assert st.available == st.balance - DEPOSIT - 4_500 * SNM  # miner's second credit unclaimed
    payouts = w.payouts()
    assert [p.payout for p in payouts] == [900 * SNM, 2_700 * SNM, 4_500 * SNM]
    assert [p.lock_fee for p in payouts] == [100 * SNM, 300 * SNM, 500 * SNM]
