"""contracts/hubsetup.py on the embedded chain: what the contracts would refuse is
refused first, with the fix in the sentence, and nothing is sent."""

from __future__ import annotations

import pytest

from contracts.hubsetup import (
    MAX_MULTIADDRS_BYTES,
    HubSetupError,
    check_listing,
    create_wallet,
    register_hub,
)
from contracts.records import HubStatus

from .conftest import SNM, World

ADDR = ["/ip4/192.0.2.1/tcp/4001"]


@pytest.mark.parametrize(
    ("name", "addrs", "match"),
    [
        ("", ADDR, "hub name must be 1..64 bytes"),
        ("é" * 33, ADDR, "hub name must be 1..64 bytes"),
        ("h", [], "at least one multiaddr"),
        ("h", ["192.0.2.1:4001"], "not a multiaddr"),
        ("h", ["/ip4/192.0.2.1/tcp/1,/ip4/192.0.2.2/tcp/2"], "not a multiaddr"),
        ("h", ["/dns4/" + "a" * 60 + "/tcp/4001"] * 8, f"at most {MAX_MULTIADDRS_BYTES}"),
    ],
)
def test_a_listing_the_wallet_would_refuse(name: str, addrs: list[str], match: str) -> None:
    with pytest.raises(HubSetupError, match=match):
        check_listing(name, addrs)


def test_register_with_a_funder_and_what_is_refused_before_sending(world: World) -> None:
    s = world.system
    wallet, tx = create_wallet(s, world.hub)
    assert tx.startswith("0x") and s.factory.is_wallet(wallet)
    block = world.chain.block_number
    with pytest.raises(HubSetupError, match="was not made by the factory"):
        register_hub(s, world.other, world.hub, name="h", multiaddrs=ADDR)
    with pytest.raises(HubSetupError, match="not an address"):
        register_hub(s, "0x12", world.hub, name="h", multiaddrs=ADDR)
    with pytest.raises(HubSetupError, match=f"belongs to {world.hub}"):
        register_hub(s, wallet, world.other, name="h", multiaddrs=ADDR)
    with pytest.raises(HubSetupError, match="for the deposit"):
        register_hub(s, wallet, world.hub, name="h", multiaddrs=ADDR)  # the hub holds none
    assert world.chain.block_number == block  # nothing was sent
    # the DAO pays the deposit (as in the demo), the owner registers
    done = register_hub(s, wallet, world.hub, name="h", multiaddrs=ADDR, funder=world.dao)
    assert set(done.txs) == {"fund", "register"}
    assert done.status == HubStatus.REGISTERED and done.frozen == s.factory.deposit()
    with pytest.raises(HubSetupError, match="REGISTERED: nothing to register"):
        register_hub(s, wallet, world.hub, name="h", multiaddrs=ADDR)
    # a wallet that holds the deposit already is registered without a top-up
    second, _ = create_wallet(s, world.hub2)
    s.token.transfer(second, 5_000 * SNM, sender=world.dao)
    again = register_hub(s, second, world.hub2, name="h2", multiaddrs=ADDR)
    assert set(again.txs) == {"register"} and again.status == HubStatus.REGISTERED
