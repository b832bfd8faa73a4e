"""Hub verification: the verdicts a gossip validator needs, the cache, invalidation."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from contracts.records import HubStatus, Payout
from contracts.verify import HubVerdict, HubVerifier, PayoutHistory, VerifierParams

from .conftest import SNM, TEST_PARAMS, World


@dataclass
class ManualClock:
    t: float = 1_000.0

    def __call__(self) -> float:
        return self.t


def make_verifier(world: World, clock: ManualClock, ttl: float = 60.0) -> HubVerifier:
    params = VerifierParams(min_frozen_funds=TEST_PARAMS.deposit, ttl=ttl, max_block_range=3)
    return HubVerifier(world.system, params, clock=clock)


def test_registered_hub_is_accepted_with_its_facts(world: World) -> None:
    w = world.make_hub(fund=TEST_PARAMS.deposit + 1_000 * SNM)
    world.system.whitelist.set_trusted(w.address, True, sender=world.dao)
    v = make_verifier(world, ManualClock()).verify(w.address, world.hub)
    assert v.verdict is HubVerdict.ACCEPT and v.reasons == ()
    f = v.facts
    assert f.made_by_factory and f.registered and f.trusted
    assert f.status is HubStatus.REGISTERED and f.frozen_funds == TEST_PARAMS.deposit
    assert f.name == "hub-a" and f.multiaddrs == ("/ip4/127.0.0.1/tcp/4001",)
    assert f.payouts.count == 0


def test_raw_address_bytes_are_accepted(world: World) -> None:
    w = world.make_hub()
    v = make_verifier(world, ManualClock()).verify(
        bytes.fromhex(w.address[2:]), bytes.fromhex(world.hub[2:])
    )
    assert v.verdict is HubVerdict.ACCEPT
    with pytest.raises(ValueError, match="wallet: an address is 20 bytes"):
        make_verifier(world, ManualClock()).verify(b"\x01" * 19, world.hub)


def test_unregistered_and_foreign_wallets_are_rejected(world: World) -> None:
    verifier = make_verifier(world, ManualClock())
    not_wallet = verifier.verify(world.other, world.other)
    assert not_wallet.verdict is HubVerdict.REJECT
    assert "not made by the hub wallet factory" in not_wallet.reasons[0]
    address, _ = world.system.factory.create_wallet(sender=world.hub)  # made, never registered
    created = verifier.verify(address, world.hub)
    assert created.verdict is HubVerdict.REJECT and created.facts.status is HubStatus.CREATED
    assert "not registered" in created.reasons[0]


def test_wrong_owner_is_rejected(world: World) -> None:
    w = world.make_hub()
    v = make_verifier(world, ManualClock()).verify(w.address, world.other)
    assert v.verdict is HubVerdict.REJECT and not v.owner_matches
    assert "whitelist owner is" in v.reasons[0]


def test_underfunded_and_idle_hubs_are_rejected(world: World) -> None:
    w = world.make_hub()
    params = VerifierParams(min_frozen_funds=TEST_PARAMS.deposit + 1, ttl=60.0)
    v = HubVerifier(world.system, params, clock=ManualClock()).verify(w.address, world.hub)
    assert v.verdict is HubVerdict.REJECT and "below minimum" in v.reasons[0]
    w.unregister(sender=world.hub)
    idle = make_verifier(world, ManualClock()).verify(w.address, world.hub)
    assert idle.verdict is HubVerdict.REJECT and "idle" in idle.reasons[0]


def test_suspected_and_punished_hubs_are_kept_but_marked(world: World) -> None:
    w = world.make_hub()
    w.suspect(sender=world.dao)
    v = make_verifier(world, ManualClock()).verify(w.address, world.hub)
    assert v.verdict is HubVerdict.MARK and v.facts.status is HubStatus.SUSPECTED
    world.chain.increase_time(TEST_PARAMS.waiting_period)
    w.ban(sender=world.dao)
    v = make_verifier(world, ManualClock()).verify(w.address, world.hub)
    assert v.verdict is HubVerdict.MARK and v.facts.status is HubStatus.PUNISHED
    assert v.reasons == ("hub was punished by the DAO",)


def test_payout_history_from_wallet_events(world: World) -> None:
    w = world.make_hub(fund=TEST_PARAMS.deposit + 1_000 * SNM)
    for amount in (100, 200, 300):
        w.transfer(world.miner, amount * SNM, sender=world.hub)
        world.chain.increase_time(100)
    v = make_verifier(world, ManualClock()).verify(w.address, world.hub)
    p = v.facts.payouts
    assert p.count == 3 and p.total == 540 * SNM and p.average == 180 * SNM
    assert p.first_at is not None and p.last_at is not None and p.last_at > p.first_at
    assert p.mean_interval == pytest.approx(101.0, abs=1.0)
    assert p.regularity is not None and p.regularity > 0.9


def test_payout_history_summary() -> None:
    def payout(t: int, amount: int) -> Payout:
        return Payout("w", "m", amount, amount, 0, t, 1)

    empty = PayoutHistory.from_payouts([])
    assert (empty.count, empty.average, empty.regularity) == (0, 0, None)
    clockwork = PayoutHistory.from_payouts([payout(t, 10) for t in (0, 100, 200, 300)])
    assert clockwork.regularity == 1.0 and clockwork.mean_interval == 100.0
    erratic = PayoutHistory.from_payouts([payout(t, 10) for t in (0, 10, 300, 310)])
    assert erratic.regularity is not None and erratic.regularity < 0.6


def test_cache_hit_then_ttl_expiry(world: World) -> None:
    w = world.make_hub()
    clock = ManualClock()
    verifier = make_verifier(world, clock, ttl=60.0)
    first = verifier.verify(w.address, world.hub)
    second = verifier.verify(w.address, world.hub)
    assert not first.from_cache and second.from_cache
    assert second.facts is first.facts
    assert (verifier.stats.hits, verifier.stats.misses) == (1, 1)
    clock.t += 61
    third = verifier.verify(w.address, world.hub)
    assert not third.from_cache and verifier.stats.misses == 2


def test_new_events_invalidate_the_cache(world: World) -> None:
    w = world.make_hub(fund=TEST_PARAMS.deposit + 100 * SNM)
    other = world.make_hub(owner=world.hub2, name="b")
    verifier = make_verifier(world, ManualClock(), ttl=3_600.0)
    assert verifier.verify(w.address, world.hub).verdict is HubVerdict.ACCEPT
    verifier.verify(other.address, world.hub2)
    assert verifier.poll() == set()  # nothing new
    w.suspect(sender=world.dao)
    for _ in range(4):  # more blocks than one max_block_range page
        world.chain.mine()
    assert verifier.verify(w.address, world.hub).from_cache  # stale until polled
    touched = verifier.poll()
    assert w.address in touched and other.address not in touched
    v = verifier.verify(w.address, world.hub)
    assert not v.from_cache and v.verdict is HubVerdict.MARK
    assert verifier.verify(other.address, world.hub2).from_cache
    # a payout is a wallet event too: the history refreshes, read incrementally
    w.rehab(sender=world.dao)
    w.transfer(world.miner, 10 * SNM, sender=world.hub)
    verifier.poll()
    v = verifier.verify(w.address, world.hub)
    assert v.verdict is HubVerdict.ACCEPT and v.facts.payouts.count == 1


def test_a_wallet_created_after_a_negative_answer_is_rechecked(world: World) -> None:
    verifier = make_verifier(world, ManualClock(), ttl=3_600.0)
    s = world.system
    address, _ = s.factory.create_wallet(sender=world.hub)
    assert verifier.verify(address, world.hub).verdict is HubVerdict.REJECT
    s.token.transfer(address, TEST_PARAMS.deposit, sender=world.dao)
    s.wallet(address).register("late", [], sender=world.hub)
    assert address in verifier.poll()
    assert verifier.verify(address, world.hub).verdict is HubVerdict.ACCEPT


def test_lru_bound(world: World) -> None:
    a = world.make_hub(name="a")
    b = world.make_hub(owner=world.hub2, name="b")
    params = VerifierParams(min_frozen_funds=0, ttl=60.0, max_entries=1)
    verifier = HubVerifier(world.system, params, clock=ManualClock())
    verifier.verify(a.address, world.hub)
    verifier.verify(b.address, world.hub2)
    assert not verifier.verify(a.address, world.hub).from_cache


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"min_frozen_funds": -1}, "min_frozen_funds"),
        ({"ttl": 0.0}, "ttl"),
        ({"max_block_range": 0}, "max_block_range"),
        ({"max_entries": 0}, "max_entries"),
    ],
)
def test_params_validate(kwargs: dict[str, float], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        VerifierParams(**kwargs).validate()  # type: ignore[arg-type]
