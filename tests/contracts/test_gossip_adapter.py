"""Hub verification wired into the real gossip validator for hub announcements."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.gossip_adapter import ChainHubCheck
from contracts.verify import HubVerifier, VerifierParams
from gossip.codec import encode
from gossip.eip712 import SigningDomain
from gossip.hubs import HubAnnouncement
from gossip.topics import HUBS_TOPIC
from gossip.validation import ValidationResult
from gossip.validators import HubCheck, MessageValidator, ValidatorParams

from .conftest import TEST_PARAMS, World

NOW = 1_800_000_000.0


@dataclass
class Clock:
    t: float = 0.0

    def __call__(self) -> float:
        return self.t


def key_of(world: World, address: str) -> bytes:
    """eth-tester's account i has the private key i + 1."""
    return (world.chain.accounts.index(address) + 1).to_bytes(32, "big")


def announcement(world: World, owner: str, wallet: str, sequence: int = 1) -> bytes:
    ann = HubAnnouncement(
        owner=bytes.fromhex(owner[2:]),
        wallet=bytes.fromhex(wallet[2:]),
        peer_id=b"\x00\x24peer",
        multiaddrs=("/ip4/127.0.0.1/tcp/4001",),
        name="hub-a",
        description="",
        sequence=sequence,
        valid_from=int(NOW) - 10,
        valid_until=int(NOW) + 3_600,
    )
    return encode(ann.signed(SigningDomain(chain_id=world.chain.chain_id), key_of(world, owner)))


def make(world: World, inline: bool) -> tuple[MessageValidator, ChainHubCheck]:
    verifier = HubVerifier(
        world.system, VerifierParams(min_frozen_funds=TEST_PARAMS.deposit), clock=Clock()
    )
    check = ChainHubCheck(verifier, inline=inline)
    validator = MessageValidator(
        ValidatorParams(
            domain=SigningDomain(chain_id=world.chain.chain_id), reject_failed_hubs=True
        ),
        clock=lambda: NOW,
        hub_check=check,
    )
    return validator, check


def test_inline_verdicts(world: World) -> None:
    good = world.make_hub()
    bad = world.make_hub(owner=world.hub2, name="b")
    bad.suspect(sender=world.dao)
    validator, _ = make(world, inline=True)
    v = validator.check(HUBS_TOPIC, announcement(world, world.hub, good.address), NOW)
    assert (v.result, v.reason) == (ValidationResult.ACCEPT, "accepted")
    v = validator.check(HUBS_TOPIC, announcement(world, world.hub2, bad.address), NOW)
    assert (v.result, v.reason) == (ValidationResult.ACCEPT, "accepted-marked")
    # a well-signed announcement naming a wallet the factory never made
    v = validator.check(HUBS_TOPIC, announcement(world, world.other, world.other), NOW)
    assert (v.result, v.reason) == (ValidationResult.REJECT, "hub-failed")
    # someone else's wallet
    v = validator.check(HUBS_TOPIC, announcement(world, world.other, good.address), NOW)
    assert (v.result, v.reason) == (ValidationResult.REJECT, "hub-failed")


def test_queued_lookup_then_verdict(world: World) -> None:
    good = world.make_hub()
    validator, check = make(world, inline=False)
    first = validator.check(HUBS_TOPIC, announcement(world, world.hub, good.address, 1), NOW)
    assert (first.result, first.reason) == (ValidationResult.IGNORE, "hub-pending")
    assert check.queued == 1
    [looked_up] = check.refresh()
    assert looked_up.facts.wallet == good.address and check.queued == 0
    again = validator.check(HUBS_TOPIC, announcement(world, world.hub, good.address, 1), NOW)
    assert again.result is ValidationResult.ACCEPT  # PENDING did not spend the sequence
    # the DAO suspects the hub: the next refresh sees the event and re-checks the hub
    good.suspect(sender=world.dao)
    assert [v.verdict.value for v in check.refresh()] == ["mark"]
    nxt = validator.check(HUBS_TOPIC, announcement(world, world.hub, good.address, 2), NOW)
    assert nxt.reason == "accepted-marked"


def test_pending_queue_is_bounded(world: World) -> None:
    verifier = HubVerifier(world.system, VerifierParams(), clock=Clock())
    check = ChainHubCheck(verifier, max_pending=2)
    for i in range(5):
        fake = HubAnnouncement(
            owner=bytes([i]) * 20,
            wallet=bytes([i + 1]) * 20,
            peer_id=b"p",
            multiaddrs=(),
            name="x",
            description="",
            sequence=1,
            valid_from=0,
            valid_until=1,
        )
        assert check(fake, NOW) is HubCheck.PENDING
    assert check.queued == 2 and check.counters.pending == 5
    assert len(check.refresh()) == 2
