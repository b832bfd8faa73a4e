"""Hub wallet payments read from the chain's MinerPaid events (p2pnode/reputation/
chainfeed.py) and judged by the reputation core against a worker's agreement."""

from __future__ import annotations

from contracts.params import SNM
from gossip.eip712 import SigningDomain
from p2pnode.reputation import chainfeed
from reputation.core import ReputationCore
from reputation.evidence import Agreement, Payment
from reputation.params import ReputationParams
from reputation.state import HubStatus, Reason
from tests.contracts.conftest import World


class _Rng:
    def random(self) -> float:
        return 0.5

    def shuffle(self, x: list[object]) -> None:
        return None


def _b(address: str) -> bytes:
    return bytes.fromhex(address[2:])


def test_payments_are_read_by_wallet_and_cursor_and_match_an_agreement(world: World) -> None:
    good = world.make_hub(fund=2_000 * SNM)
    quiet = world.make_hub(owner=world.hub2, fund=2_000 * SNM, name="hub-b")
    r1 = good.transfer(world.miner, 10 * SNM, sender=world.hub)
    good.transfer(world.other, 3 * SNM, sender=world.hub)

    wallets = {_b(good.address): 0, _b(quiet.address): 0}
    seen, head, since = chainfeed.read(world.system, wallets)
    # a short chain is read from its start: nothing paid before is unknown
    assert since == dict.fromkeys(wallets, 0.0)
    assert [(p.hub, p.worker, p.amount) for p in seen] == [
        (_b(good.address), _b(world.miner), 10 * SNM),
        (_b(good.address), _b(world.other), 3 * SNM),
    ]
    assert seen[0].block == r1.block_number and head >= r1.block_number
    # from the cursor on, nothing is read twice
    again, head2, since2 = chainfeed.read(world.system, dict.fromkeys(wallets, head))
    assert again == [] and head2 == head and since2 == {}
    good.transfer(world.miner, 10 * SNM, sender=world.hub)
    third, _, _ = chainfeed.read(world.system, dict.fromkeys(wallets, head))
    assert [(p.worker, p.amount) for p in third] == [(_b(world.miner), 10 * SNM)]

    # the miner's agreement: 10 SNM per hour, hourly paydays from an hour before the
    # first payment; the core judges the payday once its grace has passed
    core = ReputationCore(
        ReputationParams(), SigningDomain(chain_id=world.chain.chain_id), _Rng(),
        address=_b(world.miner),
    )  # fmt: skip
    hub = _b(good.address)
    core.hub_announced(hub, True, seen[0].at - 3600)
    start = seen[0].at - 3600 + 60
    core.add_agreement(Agreement(_b(world.miner), hub, 10 * SNM, 3600, start))
    for p in [*seen, *third]:
        core.payment_observed(Payment(p.hub, p.worker, p.amount, p.at))
    core.on_timer(start + 3600 + 3601)
    assert core.status(hub) is HubStatus.SAFE
    assert core.record(hub).reason is Reason.PAYMENT_MATCHED


def test_a_wallet_never_read_is_read_back_only_so_far(world: World) -> None:
    w = world.make_hub(fund=2_000 * SNM)
    w.transfer(world.miner, 1 * SNM, sender=world.hub)
    for _ in range(3):
        world.chain.mine()
    head = world.chain.block_number()
    recent, _, _ = chainfeed.read(world.system, {_b(w.address): 0}, first_lookback=head)
    assert len(recent) == 1
    # the transfer lies more than 3 blocks back: a first read of 3 blocks misses it...
    short, _, since = chainfeed.read(world.system, {_b(w.address): 0}, first_lookback=3)
    assert short == []
    # and says from when it knows the wallet's payments: the first block it read
    assert since == {_b(w.address): float(world.chain.block_time(head - 2))}
    assert since[_b(w.address)] >= recent[0].at
    # ...but a wallet read before is read from its cursor, however far back
    again, _, _ = chainfeed.read(world.system, {_b(w.address): 1}, first_lookback=3)
    assert len(again) == 1
