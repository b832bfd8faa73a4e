from __future__ import annotations

import pytest

from contracts.errors import ContractRevert
from contracts.snm import Token

from .conftest import SNM, World

MAX = 2**256 - 1


def test_metadata(world: World) -> None:
    t = world.system.token
    assert (t.name(), t.symbol(), t.decimals()) == ("SONM Token", "SNM", 18)
    assert t.minter() == world.dao
    assert t.total_supply() == 10_000_000 * SNM


def test_transfer_moves_balance_and_logs(world: World) -> None:
    t = world.system.token
    before = t.balance_of(world.other)
    r = t.transfer(world.other, 5 * SNM, sender=world.consumer)
    assert t.balance_of(world.other) == before + 5 * SNM
    ev = r.event("Transfer")
    assert (ev.args["sender"], ev.args["receiver"], ev.args["value"]) == (
        world.consumer,
        world.other,
        5 * SNM,
    )


def test_transfer_reverts(world: World) -> None:
    t = world.system.token
    with pytest.raises(ContractRevert) as e:
        t.transfer(world.dao, 1, sender=world.other)
    assert e.value.reason == "token: insufficient balance"
    with pytest.raises(ContractRevert, match="transfer to zero address"):
        t.transfer("0x" + "00" * 20, 1, sender=world.consumer)


def test_approve_and_transfer_from(world: World) -> None:
    t = world.system.token
    r = t.approve(world.other, 10 * SNM, sender=world.consumer)
    assert r.event("Approval").args["value"] == 10 * SNM
    t.transfer_from(world.consumer, world.miner, 4 * SNM, sender=world.other)
    assert t.allowance(world.consumer, world.other) == 6 * SNM
    assert t.balance_of(world.miner) == 4 * SNM
    with pytest.raises(ContractRevert, match="insufficient allowance"):
        t.transfer_from(world.consumer, world.miner, 7 * SNM, sender=world.other)
    with pytest.raises(ContractRevert, match="approve to zero address"):
        t.approve("0x" + "00" * 20, 1, sender=world.consumer)


def test_unlimited_allowance_is_not_spent(world: World) -> None:
    t = world.system.token
    t.approve(world.other, MAX, sender=world.consumer)
    t.transfer_from(world.consumer, world.miner, SNM, sender=world.other)
    assert t.allowance(world.consumer, world.other) == MAX


def test_transfer_from_checks_balance_after_allowance(world: World) -> None:
    t = world.system.token
    t.approve(world.consumer, 10 * SNM, sender=world.other)  # other holds nothing
    with pytest.raises(ContractRevert, match="insufficient balance"):
        t.transfer_from(world.other, world.miner, SNM, sender=world.consumer)


def test_mint_and_minter_role(world: World) -> None:
    t = world.system.token
    supply = t.total_supply()
    t.mint(world.other, 3 * SNM, sender=world.dao)
    assert t.total_supply() == supply + 3 * SNM
    assert t.balance_of(world.other) == 3 * SNM
    with pytest.raises(ContractRevert, match="caller is not the minter"):
        t.mint(world.other, 1, sender=world.other)
    with pytest.raises(ContractRevert, match="mint to zero address"):
        t.mint("0x" + "00" * 20, 1, sender=world.dao)
    with pytest.raises(ContractRevert, match="caller is not the minter"):
        t.set_minter(world.other, sender=world.other)
    r = t.set_minter(world.other, sender=world.dao)
    assert r.event("MinterChanged").args["new_minter"] == world.other
    t.mint(world.miner, 1, sender=world.other)
    with pytest.raises(ContractRevert, match="caller is not the minter"):
        t.mint(world.miner, 1, sender=world.dao)


def test_wrapper_binds_any_address(world: World) -> None:
    again = Token(world.chain, world.system.addresses.token.lower())
    assert again.address == world.system.addresses.token
    assert again.balance_of(world.consumer) == world.system.token.balance_of(world.consumer)
