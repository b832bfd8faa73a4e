"""A market: suppliers keep ASKs on their slots, consumers place BIDs, the matching core pairs them.

What it measures, in virtual time: orders offered per second, the share of BIDs
that get a deal before they expire, the time from a BID to its deal, and the
price spread (how far below the BID's limit the deal's price lies). It drives the
node's own matching core (p2pnode.market.matching): one ASK index stands for the
book every consumer's node holds, and the rule decides each pair.

The model, and why:

- `suppliers` hubs have `slots` slots each, a machine's share with its own
  resources and price. A free slot always has an ASK (valid `ask_ttl_s`); one that
  expires unmatched is placed again `reprice` cheaper, one that a deal took comes
  back after the deal `reprice` dearer, so prices follow demand.
- BIDs arrive as a Poisson stream (`bid_rate_per_s`), each with a few needs drawn
  from the same machine classes, a price limit around the needs' fair value and a
  lifetime (`bid_ttl_s`). Some name a minimum rating.
- Gossip takes `propagation_s` to carry an ASK or its cancel to the consumers'
  books (docs/simulation.md: the order_propagation scenario measures it). A BID
  is matched on its own node at once; an open BID is checked against each ASK
  that arrives. A consumer that reaches a slot another consumer took less than
  `propagation_s` ago (or an ASK its hub has replaced) is refused by the hub's
  reservation, drops that ASK and matches again a round trip later: `conflicts`
  counts those.
- A BID that expires unmatched is explained (`explain`): `unmatched_by` counts
  the constraint that ruled out the most ASKs for it.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from gossip.errors import UserError
from gossip.orders import NetworkType, Order, Side
from p2pnode.market.matching import AskIndex, explain, matches
from simulations import plots
from simulations.engine import Simulator
from simulations.results import percentile
from simulations.scenarios.base import CommonParams

GIB = 2**30
SNM = 10**18
CDF_POINTS = 100
EXPIRE_EVERY_S = 10.0

# machine classes: (cores, GiB RAM, GPUs, GiB per GPU), weight
MACHINES: tuple[tuple[tuple[int, int, int, int], float], ...] = (
    ((4, 8, 0, 0), 0.25),
    ((8, 32, 0, 0), 0.25),
    ((16, 64, 0, 0), 0.15),
    ((8, 32, 1, 16), 0.15),
    ((16, 64, 2, 24), 0.1),
    ((32, 256, 4, 40), 0.06),
    ((64, 512, 8, 80), 0.04),
)
BID_DURATIONS_S = (1800, 3600, 4 * 3600)
ASK_DURATION_S = 24 * 3600


@dataclass(frozen=True)
class MarketParams(CommonParams):
    """`nodes` is unused here beyond CommonParams' checks: the market's size is below."""

    nodes: int = 100
    degree: int = 8
    suppliers: int = 50
    slots: int = 4
    bid_rate_per_s: float = 0.05
    bid_ttl_s: float = 900.0
    ask_ttl_s: float = 1800.0
    propagation_s: float = 0.3
    reprice: float = 0.05
    price_noise: float = 0.25
    market_s: float = 6 * 3600.0

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.suppliers <= 100_000:
            raise UserError(f"suppliers must be in [1, 100000], got {self.suppliers}")
        if not 1 <= self.slots <= 64:
            raise UserError(f"slots must be in [1, 64], got {self.slots}")
        if not 0.0 < self.bid_rate_per_s <= 1000.0:
            raise UserError(f"bid_rate_per_s must be in (0, 1000], got {self.bid_rate_per_s}")
        if not 1.0 <= self.bid_ttl_s <= 31 * 86_400:
            raise UserError(f"bid_ttl_s must be in [1, 2678400], got {self.bid_ttl_s}")
        if not 1.0 <= self.ask_ttl_s <= 31 * 86_400:
            raise UserError(f"ask_ttl_s must be in [1, 2678400], got {self.ask_ttl_s}")
        if not 0.0 <= self.propagation_s <= 60.0:
            raise UserError(f"propagation_s must be in [0, 60], got {self.propagation_s}")
        if not 0.0 <= self.reprice < 1.0:
            raise UserError(f"reprice must be in [0, 1), got {self.reprice}")
        if not 0.0 <= self.price_noise <= 2.0:
            raise UserError(f"price_noise must be in [0, 2], got {self.price_noise}")
        if not 60.0 <= self.market_s <= 30 * 86_400:
            raise UserError(f"market_s must be in [60, 2592000], got {self.market_s}")


def fair_price(cores: int, ram_gib: int, gpus: int, gpu_gib: int) -> float:
    """SNM per hour a machine share is worth: the scale both sides price around."""
    return cores * 0.004 + ram_gib * 0.001 + gpus * gpu_gib * 0.004


@dataclass
class Slot:
    supplier: bytes
    machine: tuple[int, int, int, int]
    price: float  # SNM per hour now
    ask_id: bytes = b""
    ask: Order | None = None
    busy: bool = False


@dataclass
class OpenBid:
    bid: Order
    placed: float
    done: bool = False


class Market:
    """The scenario (see the module docstring); one run per Simulator."""

    name: ClassVar[str] = "market"
    Params: ClassVar[type[CommonParams]] = MarketParams

    def __init__(self, params: CommonParams) -> None:
        params.validate()
        if not isinstance(params, MarketParams):
            raise UserError("the market scenario takes MarketParams")
        self.params: CommonParams = params
        self.mp = params
        self.bid_rng = random.Random(0)  # replaced in build, from the run's seed
        self.index = AskIndex()
        self.slots: list[Slot] = []
        self.by_ask: dict[bytes, Slot] = {}
        self.open: list[OpenBid] = []
        self.ratings: dict[bytes, int] = {}
        self.counter = 0
        self.asks_placed = 0
        self.bids_placed = 0
        self.cancels = 0
        self.conflicts = 0
        self.wait_s: list[float] = []
        self.immediate = 0
        self.spread: list[float] = []
        self.deal_prices: list[float] = []
        self.deal_times: list[float] = []  # beside `spread`, for the spread over time
        self.expired_bids = 0
        self.unmatched_by: dict[str, int] = {}
        self.book_sizes: list[int] = []

    # -- set-up ---------------------------------------------------------------------------

    def end_time(self) -> float:
        p = self.mp
        return p.market_s + p.bid_ttl_s

    def build(self, sim: Simulator) -> None:
        p = self.mp
        rng = sim.child_rng("market/slots")
        weights = [w for _, w in MACHINES]
        for s in range(p.suppliers):
            supplier = hashlib.sha256(b"supplier%d" % s).digest()[:20]
            self.ratings[supplier] = int(rng.triangular(0, 10_000, 8_000))
            for _ in range(p.slots):
                machine = rng.choices([m for m, _ in MACHINES], weights)[0]
                price = fair_price(*machine) * math.exp(rng.gauss(0.0, p.price_noise))
                self.slots.append(Slot(supplier, machine, price))
        # slots come on line over the first minute, not all at one instant
        for slot in self.slots:
            sim.schedule(rng.uniform(0.0, 60.0), self.place_ask, sim, slot)
        self.bid_rng = sim.child_rng("market/bid-details")
        bids = sim.child_rng("market/bids")
        t = bids.expovariate(p.bid_rate_per_s)
        while t < p.market_s:
            sim.schedule(t, self.place_bid, sim, bids.random())
            t += bids.expovariate(p.bid_rate_per_s)
        k = 1
        while k * EXPIRE_EVERY_S <= self.end_time():
            sim.schedule(k * EXPIRE_EVERY_S, self.expire, sim)
            k += 1

    def _next_id(self, kind: bytes) -> bytes:
        self.counter += 1
        return hashlib.sha256(kind + self.counter.to_bytes(8, "big")).digest()

    # -- suppliers --------------------------------------------------------------------------

    def place_ask(self, sim: Simulator, slot: Slot) -> None:
        p = self.mp
        if slot.busy:
            return
        now = int(sim.now)
        ask = Order.create(
            author=slot.supplier,
            side=Side.ASK,
            price_per_hour=max(1, int(slot.price * SNM)),
            duration=ASK_DURATION_S,
            nonce=self.counter,
            valid_from=now,
            valid_until=now + int(p.ask_ttl_s),
            network=NetworkType.INBOUND_OUTBOUND,
            cpu_cores=slot.machine[0],
            ram_bytes=slot.machine[1] * GIB,
            gpu_count=slot.machine[2],
            gpu_mem_bytes=slot.machine[3] * GIB,
        )
        ask_id = self._next_id(b"ask")
        slot.ask_id, slot.ask = ask_id, ask
        self.by_ask[ask_id] = slot
        self.asks_placed += 1
        sim.call_later(p.propagation_s, self.ask_arrives, sim, ask_id, ask)
        sim.call_later(p.ask_ttl_s + 1.0, self.ask_lapsed, sim, slot, ask_id)

    def ask_arrives(self, sim: Simulator, ask_id: bytes, ask: Order) -> None:
        """Gossip delivered the ASK: into the book, then the open BIDs look at it."""
        if not self.index.add(ask_id, ask):
            return
        for ob in self.open:
            if not ob.done and matches(ob.bid, ask, self.rating):
                self.try_deal(sim, ob, ask_id)
                return

    def ask_lapsed(self, sim: Simulator, slot: Slot, ask_id: bytes) -> None:
        """Nobody took the ASK in its window: place a cheaper one."""
        if slot.ask_id != ask_id or slot.busy:
            return
        self.by_ask.pop(ask_id, None)
        slot.price *= 1.0 - self.mp.reprice
        self.place_ask(sim, slot)

    # -- consumers ----------------------------------------------------------------------------

    def place_bid(self, sim: Simulator, draw: float) -> None:
        p = self.mp
        rng = self.bid_rng
        machine = rng.choices([m for m, _ in MACHINES], [w for _, w in MACHINES])[0]
        cores, ram, gpus, gpu_gib = machine
        # a consumer needs part of a machine class: fewer cores, less RAM, the GPUs it names
        need = (
            max(1, cores // rng.choice([1, 2, 4])),
            max(1, ram // rng.choice([1, 2, 4])),
            gpus,
            gpu_gib,
        )
        limit = fair_price(*need) * math.exp(rng.gauss(0.2, p.price_noise))
        consumer = hashlib.sha256(b"consumer%d" % int(draw * 1e9)).digest()[:20]
        now = int(sim.now)
        bid = Order.create(
            author=consumer,
            side=Side.BID,
            price_per_hour=max(1, int(limit * SNM)),
            duration=rng.choice(BID_DURATIONS_S),
            nonce=self.bids_placed,
            valid_from=now,
            valid_until=now + int(p.bid_ttl_s),
            network=NetworkType.OUTBOUND,
            cpu_cores=need[0],
            ram_bytes=need[1] * GIB,
            gpu_count=need[2],
            gpu_mem_bytes=need[3] * GIB,
            min_rating=5000 if rng.random() < 0.2 else 0,
        )
        self.bids_placed += 1
        ob = OpenBid(bid, sim.now)
        self.open.append(ob)
        sim.call_later(p.bid_ttl_s, self.bid_lapsed, sim, ob)
        self.match_now(sim, ob)

    def match_now(self, sim: Simulator, ob: OpenBid) -> None:
        if ob.done:
            return
        m = self.index.match(ob.bid, self.rating)
        if m is not None:
            self.try_deal(sim, ob, m.order_id)

    def try_deal(self, sim: Simulator, ob: OpenBid, ask_id: bytes) -> None:
        """Ask the hub for the slot; it refuses a slot that is taken or an ASK it replaced.

        A refused consumer drops that ASK from its book (the hub's cancel is on its
        way anyway) and matches again after the round trip (2 x propagation_s).
        """
        slot = self.by_ask.get(ask_id)
        if slot is None or slot.busy or slot.ask_id != ask_id or slot.ask is None:
            self.conflicts += 1
            self.index.cancel(ask_id)
            sim.call_later(2 * self.mp.propagation_s, self.match_now, sim, ob)
            return
        ob.done = True
        slot.busy = True
        del self.by_ask[ask_id]
        wait = sim.now - ob.placed
        self.wait_s.append(wait)
        self.immediate += wait == 0.0
        ask_price, bid_price = slot.ask.price_per_hour, ob.bid.price_per_hour
        self.spread.append((bid_price - ask_price) / bid_price)
        self.deal_times.append(sim.now)
        self.deal_prices.append(ask_price / SNM)
        self.open = [o for o in self.open if not o.done]
        sim.call_later(self.mp.propagation_s, self.withdraw, sim, ask_id)
        sim.call_later(float(ob.bid.duration), self.deal_ends, sim, slot)

    def withdraw(self, sim: Simulator, ask_id: bytes) -> None:
        """The hub's signed cancel of the taken ASK reaches the consumers' books."""
        self.cancels += self.index.cancel(ask_id)

    def deal_ends(self, sim: Simulator, slot: Slot) -> None:
        slot.busy = False
        slot.price *= 1.0 + self.mp.reprice
        self.place_ask(sim, slot)

    def bid_lapsed(self, sim: Simulator, ob: OpenBid) -> None:
        if ob.done:
            return
        ob.done = True
        self.expired_bids += 1
        e = explain(self.index, ob.bid, self.rating)
        worst = max(e.ruled_out, key=lambda c: e.ruled_out[c]) if e.total else "empty book"
        self.unmatched_by[worst] = self.unmatched_by.get(worst, 0) + 1
        self.open = [o for o in self.open if not o.done]

    def expire(self, sim: Simulator) -> None:
        self.index.expire(int(sim.now))
        self.book_sizes.append(len(self.index))

    def rating(self, address: bytes) -> int:
        return self.ratings.get(address, 0)

    # -- the protocol ---------------------------------------------------------------------------

    def run(self, sim: Simulator) -> dict[str, Any]:
        p = self.mp
        sim.run(until=self.end_time())
        waits = sorted(self.wait_s)
        spread = sorted(self.spread)
        prices = sorted(self.deal_prices)
        deals = len(waits)
        ended = deals + self.expired_bids
        return {
            "orders_offered_per_s": (self.asks_placed + self.bids_placed) / p.market_s,
            "asks_placed": self.asks_placed,
            "bids_placed": self.bids_placed,
            "deals": deals,
            "match_rate": deals / ended if ended else math.nan,
            "bids_expired": self.expired_bids,
            "bids_open_at_end": sum(1 for o in self.open if not o.done),
            "matched_on_arrival": self.immediate / deals if deals else math.nan,
            "time_to_match_s": {
                "p50": percentile(waits, 50),
                "p90": percentile(waits, 90),
                "p99": percentile(waits, 99),
                "mean": sum(waits) / deals if deals else math.nan,
            },
            "time_to_match_cdf": _cdf(waits, ended),
            "price_spread": {
                "p10": percentile(spread, 10),
                "p50": percentile(spread, 50),
                "p90": percentile(spread, 90),
            },
            "deal_price_snm_per_h": {
                "p10": percentile(prices, 10),
                "p50": percentile(prices, 50),
                "p90": percentile(prices, 90),
            },
            "price_spread_cdf": _spread_cdf(spread),
            "spread_over_time": self._spread_over_time(),
            "conflicts": self.conflicts,
            "cancels": self.cancels,
            "unmatched_by": dict(sorted(self.unmatched_by.items())),
            "book_size": {
                "mean": sum(self.book_sizes) / len(self.book_sizes) if self.book_sizes else 0.0,
                "max": max(self.book_sizes, default=0),
                "end": len(self.index),
            },
            "slots": len(self.slots),
            "events": sim.events_run,
            "virtual_time_s": sim.now,
        }

    def _spread_over_time(self) -> list[list[float]]:
        """[hour, median spread of that hour's deals, deals] per hour with deals."""
        by_hour: dict[int, list[float]] = {}
        for t, sp in zip(self.deal_times, self.spread, strict=True):
            by_hour.setdefault(int(t // 3600.0), []).append(sp)
        return [
            [float(h), percentile(sorted(v), 50), float(len(v))] for h, v in sorted(by_hour.items())
        ]

    def plots(self, results: Mapping[str, Any], out_dir: Path) -> list[Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        label = f"match rate {results['match_rate']:.2f}"
        return [
            plots.time_to_match(
                {label: results["time_to_match_cdf"]}, out_dir / "time_to_match.png"
            ),
            plots.price_spread(
                {"deals": results["price_spread_cdf"]},
                {"deals": results["spread_over_time"]},
                out_dir / "price_spread.png",
            ),
        ]


def _cdf(sorted_waits: list[float], ended: int) -> list[list[float]]:
    """(wait, share of ended BIDs matched by then); stays below 1 by the unmatched share."""
    n = len(sorted_waits)
    if not n or not ended:
        return []
    step = max(1, n // CDF_POINTS)
    idx = list(range(step - 1, n, step))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    # the end of the shortest wait's run (often 0 s: the BIDs matched on arrival)
    # always, so the curve starts at the share matched that fast
    idx = sorted({*idx, bisect.bisect_right(sorted_waits, sorted_waits[0]) - 1})
    # one point per wait value: many BIDs match on arrival, at exactly 0 s
    idx = [i for i in idx if i == n - 1 or sorted_waits[i + 1] != sorted_waits[i]]
    return [[sorted_waits[i], (i + 1) / ended] for i in idx]


def _spread_cdf(sorted_spread: list[float]) -> list[list[float]]:
    """At most CDF_POINTS (spread, share of deals with at most that spread) pairs."""
    n = len(sorted_spread)
    if not n:
        return []
    step = max(1, n // CDF_POINTS)
    idx = list(range(step - 1, n, step))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    return [[sorted_spread[i], (i + 1) / n] for i in idx]
