"""Whitelist: only factory wallets register, wallets report their own status, the DAO
keeps the trusted list."""

from __future__ import annotations

import pytest

from contracts.client import deploy_contract
from contracts.errors import ContractRevert
from contracts.records import HubStatus
from contracts.whitelist import Whitelist

from .conftest import World

ZERO = "0x" + "00" * 20


def test_deploy_wires_the_factory(world: World) -> None:
    wl = world.system.whitelist
    assert wl.dao() == world.dao
    assert wl.factory() == world.system.addresses.factory


def test_constructor_rejects_zero_dao(world: World) -> None:
    with pytest.raises(ContractRevert, match="zero DAO address"):
        deploy_contract(world.chain, "Whitelist", ZERO, sender=world.dao)


def test_set_factory_once_by_the_dao(world: World) -> None:
    wl = Whitelist(
        world.chain, deploy_contract(world.chain, "Whitelist", world.dao, sender=world.dao)
    )
    with pytest.raises(ContractRevert, match="factory not set"):
        wl.register_hub(world.hub, "x", [], sender=world.hub)
    with pytest.raises(ContractRevert, match="caller is not the DAO"):
        wl.set_factory(world.other, sender=world.other)
    with pytest.raises(ContractRevert, match="zero factory address"):
        wl.set_factory(ZERO, sender=world.dao)
    r = wl.set_factory(world.other, sender=world.dao)
    assert r.event("FactorySet").args["factory"] == world.other
    with pytest.raises(ContractRevert, match="factory already set"):
        wl.set_factory(world.dao, sender=world.dao)


def test_set_dao(world: World) -> None:
    wl = world.system.whitelist
    with pytest.raises(ContractRevert, match="caller is not the DAO"):
        wl.set_dao(world.other, sender=world.other)
    with pytest.raises(ContractRevert, match="zero DAO address"):
        wl.set_dao(ZERO, sender=world.dao)
    wl.set_dao(world.other, sender=world.dao)
    assert wl.dao() == world.other
    w = world.make_hub()
    wl.set_trusted(w.address, True, sender=world.other)


def test_only_factory_wallets_register(world: World) -> None:
    wl = world.system.whitelist
    with pytest.raises(ContractRevert) as e:
        wl.register_hub(world.hub, "fake", ["/ip4/127.0.0.1/tcp/1"], sender=world.hub)
    assert e.value.reason == "whitelist: not a factory wallet"
    assert wl.hub_count() == 0
    assert not wl.hub(world.hub).registered


def test_update_hub(world: World) -> None:
    wl = world.system.whitelist
    w = world.make_hub()
    r = wl.update_hub(w.address, "renamed", ["/ip4/127.0.0.1/tcp/9"], sender=world.hub)
    assert r.event("HubUpdated").args["name"] == "renamed"
    hub = wl.hub(w.address)
    assert hub.name == "renamed" and hub.multiaddrs == ("/ip4/127.0.0.1/tcp/9",)
    with pytest.raises(ContractRevert, match="caller is not the hub owner"):
        wl.update_hub(w.address, "x", [], sender=world.other)
    with pytest.raises(ContractRevert, match="empty hub name"):
        wl.update_hub(w.address, "", [], sender=world.hub)
    with pytest.raises(ContractRevert, match="hub not registered"):
        wl.update_hub(world.other, "x", [], sender=world.hub)


def test_set_status_only_from_a_registered_wallet(world: World) -> None:
    with pytest.raises(ContractRevert, match="hub not registered"):
        world.system.whitelist.set_status(HubStatus.PUNISHED, sender=world.hub)


def test_trusted_list(world: World) -> None:
    wl = world.system.whitelist
    w = world.make_hub()
    assert not wl.is_trusted(w.address)
    r = wl.set_trusted(w.address, True, sender=world.dao)
    assert r.event("TrustedChanged").args["trusted"] is True
    assert wl.is_trusted(w.address) and wl.hub(w.address).trusted
    with pytest.raises(ContractRevert, match="caller is not the DAO"):
        wl.set_trusted(w.address, False, sender=world.hub)
    with pytest.raises(ContractRevert, match="hub not registered"):
        wl.set_trusted(world.other, True, sender=world.dao)
    wl.set_trusted(w.address, False, sender=world.dao)
    assert not wl.is_trusted(w.address)


def test_enumeration_and_views(world: World) -> None:
    wl = world.system.whitelist
    a = world.make_hub(name="a")
    b = world.make_hub(owner=world.hub2, name="b")
    assert wl.hub_count() == 2
    assert [h.wallet for h in wl.hubs()] == [a.address, b.address]
    assert wl.owner_of(b.address) == world.hub2
    assert wl.status_of(b.address) is HubStatus.REGISTERED
    assert wl.status_of(world.other) is HubStatus.CREATED  # 0: never registered
