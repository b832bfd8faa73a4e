"""Hub verification against the chain, cached, and invalidated by new events.

A hub announcement claims "wallet W belongs to owner O". Before a node passes it on it
asks the chain: did the factory make W? Is W registered in the Whitelist, to O? Is it
trusted by the DAO? Is the deposit still frozen? What state is it in? Has it actually
paid miners, how often and how much? The answer is a `HubVerification`, whose
`verdict` the gossip validator maps to ACCEPT / REJECT (and "marked" for hubs the DAO
suspects or punished: their announcements still travel, flagged, so nodes learn of it).

Facts are cached per wallet for `ttl` seconds of the injected clock, and `poll()` drops
an entry early when new blocks carry an event about that wallet, so a suspect or ban
takes effect on the next poll rather than after the TTL.
"""

from __future__ import annotations

import enum
import functools
import itertools
import statistics
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from web3 import Web3

from contracts.client import call_views, read_logs
from contracts.deploy import System
from contracts.errors import ChainError
from contracts.hubwallet import HubWallet
from contracts.records import HubStatus, Payout, split_multiaddrs

Clock = Callable[[], float]


@dataclass(frozen=True)
class VerifierParams:
    min_frozen_funds: int = 10_000 * 10**18
    ttl: float = 300.0  # seconds a cached answer stays good without a poll
    max_block_range: int = 2_000  # eth_getLogs window
    max_entries: int = 10_000  # cached wallets (LRU beyond this)

    def validate(self) -> None:
        if self.min_frozen_funds < 0:
            raise ValueError(f"min_frozen_funds must be >= 0, got {self.min_frozen_funds}")
        if not self.ttl > 0:
            raise ValueError(f"ttl must be > 0 seconds, got {self.ttl}")
        if self.max_block_range < 1:
            raise ValueError(f"max_block_range must be >= 1, got {self.max_block_range}")
        if self.max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {self.max_entries}")


class HubVerdict(enum.Enum):
    ACCEPT = "accept"  # registered, funded, in good standing
    MARK = "mark"  # registered but Suspected or Punished: keep, flagged
    REJECT = "reject"  # not a factory wallet, not registered, wrong owner, underfunded, idle


@dataclass(frozen=True)
class PayoutHistory:
    count: int
    total: int  # sum of miner payouts (after lock fees), token wei
    average: int  # total // count, 0 when none
    first_at: int | None
    last_at: int | None
    mean_interval: float | None  # seconds between payouts
    regularity: float | None  # 1 / (1 + coefficient of variation of intervals); 1 = clockwork

    @classmethod
    def from_payouts(cls, payouts: list[Payout]) -> PayoutHistory:
        if not payouts:
            return cls(0, 0, 0, None, None, None, None)
        times = sorted(p.timestamp for p in payouts)
        total = sum(p.payout for p in payouts)
        intervals = [b - a for a, b in itertools.pairwise(times)]
        mean = statistics.fmean(intervals) if intervals else None
        regularity: float | None = None
        if len(intervals) >= 2 and mean:
            cv = statistics.pstdev(intervals) / mean
            regularity = 1.0 / (1.0 + cv)
        return cls(
            len(payouts), total, total // len(payouts), times[0], times[-1], mean, regularity
        )


@dataclass(frozen=True)
class HubFacts:
    """What the chain says about one wallet, read at one block."""

    wallet: str
    block_number: int
    made_by_factory: bool
    registered: bool  # ever registered in the Whitelist
    registered_owner: str | None
    status: HubStatus | None  # None when not a factory wallet
    trusted: bool
    frozen_funds: int
    name: str
    multiaddrs: tuple[str, ...]
    payouts: PayoutHistory


@dataclass(frozen=True)
class HubVerification:
    facts: HubFacts
    owner: str  # the owner the announcement claimed
    min_frozen_funds: int
    checked_at: float
    from_cache: bool

    @property
    def owner_matches(self) -> bool:
        return self.facts.registered_owner == self.owner

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why the verdict is not a plain ACCEPT, in words an operator can read."""
        f = self.facts
        out: list[str] = []
        if not f.made_by_factory:
            out.append("wallet was not made by the hub wallet factory")
        elif not f.registered:
            out.append("wallet is not registered in the whitelist")
        else:
            if not self.owner_matches:
                out.append(f"whitelist owner is {f.registered_owner}, not {self.owner}")
            if f.status is HubStatus.IDLE:
                out.append("hub is idle (unregistered, deposit released)")
            if f.status is HubStatus.REGISTERED and f.frozen_funds < self.min_frozen_funds:
                out.append(f"frozen funds {f.frozen_funds} below minimum {self.min_frozen_funds}")
            if f.status is HubStatus.SUSPECTED:
                out.append("hub is suspected by the DAO")
            if f.status is HubStatus.PUNISHED:
                out.append("hub was punished by the DAO")
        return tuple(out)

    @property
    def verdict(self) -> HubVerdict:
        f = self.facts
        if not (f.made_by_factory and f.registered and self.owner_matches):
            return HubVerdict.REJECT
        if f.status in (HubStatus.SUSPECTED, HubStatus.PUNISHED):
            return HubVerdict.MARK
        if f.status is not HubStatus.REGISTERED or f.frozen_funds < self.min_frozen_funds:
            return HubVerdict.REJECT
        return HubVerdict.ACCEPT


@dataclass
class _Entry:
    facts: HubFacts
    expires_at: float


@dataclass
class VerifierStats:
    hits: int = 0
    misses: int = 0
    invalidations: int = 0
    polls: int = 0


@dataclass
class HubVerifier:
    """Answers "is this hub real?" from the chain, with a TTL cache and event polling."""

    system: System
    params: VerifierParams = field(default_factory=VerifierParams)
    clock: Clock = time.monotonic
    stats: VerifierStats = field(default_factory=VerifierStats)

    def __post_init__(self) -> None:
        self.params.validate()
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._payouts: dict[str, tuple[list[Payout], int]] = {}
        self._polled_to: int | None = None

    def verify(self, wallet: str | bytes, owner: str | bytes) -> HubVerification:
        """Verify a hub; raises ChainError when the chain cannot be asked."""
        wallet_addr = _address("wallet", wallet)
        owner_addr = _address("owner", owner)
        now = self.clock()
        entry = self._cache.get(wallet_addr)
        if entry is not None and entry.expires_at > now:
            self._cache.move_to_end(wallet_addr)
            self.stats.hits += 1
            return HubVerification(entry.facts, owner_addr, self.params.min_frozen_funds, now, True)
        self.stats.misses += 1
        if self._polled_to is None:
            self._polled_to = self.system.chain.block_number()
        facts = self._read_facts(wallet_addr)
        self._cache[wallet_addr] = _Entry(facts, now + self.params.ttl)
        self._cache.move_to_end(wallet_addr)
        while len(self._cache) > self.params.max_entries:
            evicted, _ = self._cache.popitem(last=False)
            self._payouts.pop(evicted, None)
        return HubVerification(facts, owner_addr, self.params.min_frozen_funds, now, False)

    def peek(self, wallet: str | bytes, owner: str | bytes) -> HubVerification | None:
        """The cached answer if still fresh, else None: never touches the chain."""
        wallet_addr = _address("wallet", wallet)
        entry = self._cache.get(wallet_addr)
        now = self.clock()
        if entry is None or entry.expires_at <= now:
            return None
        self.stats.hits += 1
        owner_addr = _address("owner", owner)
        return HubVerification(entry.facts, owner_addr, self.params.min_frozen_funds, now, True)

    def invalidate(self, wallet: str) -> None:
        if self._cache.pop(Web3.to_checksum_address(wallet), None) is not None:
            self.stats.invalidations += 1

    def poll(self) -> set[str]:
        """Read events of blocks since the last poll; drop cache entries they touch."""
        self.stats.polls += 1
        head = self.system.chain.block_number()
        start = (self._polled_to if self._polled_to is not None else head) + 1
        if start > head:
            self._polled_to = head
            return set()
        a = self.system.addresses
        addresses = [a.whitelist, a.factory, *self._cache.keys()]
        touched: set[str] = set()
        for record in read_logs(
            self.system.chain, addresses, start, head, max_range=self.params.max_block_range
        ):
            if record.address in (a.whitelist, a.factory):
                wallet = record.args.get("wallet")
                if isinstance(wallet, str):
                    touched.add(Web3.to_checksum_address(wallet))
            else:
                touched.add(record.address)
        # only now: if reading failed, the same blocks are read again at the next poll
        self._polled_to = head
        for wallet in touched:
            self.invalidate(wallet)
        return touched

    def _read_facts(self, wallet: str) -> HubFacts:
        s = self.system
        block = s.chain.block_number()
        hw = HubWallet(s.chain, wallet)
        made, row, trusted, status, frozen = call_views(
            [
                (s.factory, "is_wallet", (wallet,)),
                (s.whitelist, "hubs", (wallet,)),
                (s.whitelist, "trusted", (wallet,)),
                (hw, "status", ()),  # None for an address that is not a wallet
                (hw, "frozen_funds", ()),
            ],
            block=block,
            tolerate=True,
        )
        if made is None or row is None or trusted is None:
            raise ChainError(f"hub {wallet}: the factory or whitelist did not answer")
        owner, _w, name, multiaddrs, _status, registered_at, _updated = row
        registered = int(registered_at) != 0
        made = bool(made) and status is not None and frozen is not None
        payouts = PayoutHistory.from_payouts(self._payout_list(hw, block) if made else [])
        return HubFacts(
            wallet=wallet,
            block_number=block,
            made_by_factory=made,
            registered=registered,
            registered_owner=Web3.to_checksum_address(owner) if registered else None,
            status=HubStatus(int(status)) if made else None,
            trusted=bool(trusted) and registered,
            frozen_funds=int(frozen) if made else 0,
            name=str(name),
            multiaddrs=split_multiaddrs(str(multiaddrs)),
            payouts=payouts,
        )

    def _payout_list(self, hw: HubWallet, block: int) -> list[Payout]:
        """Payout events up to `block`, extending what was read before."""
        start = self.system.addresses.deployed_at_block - 1
        known, read_to = self._payouts.get(hw.address, ([], start))
        if block > read_to:
            known = known + hw.payouts(read_to + 1, block, max_range=self.params.max_block_range)
            self._payouts[hw.address] = (known, block)
        return known


@functools.lru_cache(maxsize=65_536)  # checksumming is a keccak: not on the warm path
def _address(name: str, value: str | bytes) -> str:
    """Accept the 20 raw bytes gossip carries or a hex string; anything else is a bug."""
    if isinstance(value, bytes) and len(value) != 20:
        raise ValueError(f"{name}: an address is 20 bytes, got {len(value)}")
    try:
        return Web3.to_checksum_address(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name}: not an address: {value!r}") from exc
