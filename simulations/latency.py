"""Where nodes are and how long a frame takes between two of them.

The numbers are approximate medians of public inter-region round-trip tables
(cloud providers' inter-region pings and WonderNetwork-style city-pair tables,
2023-2024), rounded to 5 ms. They are a model of the order of magnitude, not
of any one provider: real medians vary by +-20 % by provider and route, and
tails are longer. Each node also has its own last-mile (access) latency drawn
from a log-normal distribution (median 5 ms one way, a few percent of nodes
above 20 ms), which stands for home DSL/cable/fibre and cloud NICs alike.

One-way link latency = RTT(region_a, region_b) / 2 + access(a) + access(b).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from gossip.errors import UserError

REGIONS: tuple[str, ...] = ("na_east", "na_west", "eu", "sa", "asia_east", "asia_se", "oceania")

# Share of nodes per region (sums to 1): roughly where public nodes of large p2p
# networks (Ethereum, IPFS crawls) are found.
REGION_WEIGHTS: tuple[float, ...] = (0.22, 0.13, 0.38, 0.04, 0.12, 0.07, 0.04)

# Median round-trip times in milliseconds between regions (symmetric).
# Diagonal = typical RTT between two hosts of the same region.
_RTT_MS: dict[tuple[str, str], float] = {
    ("na_east", "na_east"): 20,
    ("na_east", "na_west"): 65,
    ("na_east", "eu"): 85,
    ("na_east", "sa"): 120,
    ("na_east", "asia_east"): 155,
    ("na_east", "asia_se"): 215,
    ("na_east", "oceania"): 200,
    ("na_west", "na_west"): 20,
    ("na_west", "eu"): 145,
    ("na_west", "sa"): 175,
    ("na_west", "asia_east"): 105,
    ("na_west", "asia_se"): 170,
    ("na_west", "oceania"): 140,
    ("eu", "eu"): 25,
    ("eu", "sa"): 190,
    ("eu", "asia_east"): 230,
    ("eu", "asia_se"): 160,
    ("eu", "oceania"): 260,
    ("sa", "sa"): 30,
    ("sa", "asia_east"): 260,
    ("sa", "asia_se"): 320,
    ("sa", "oceania"): 300,
    ("asia_east", "asia_east"): 25,
    ("asia_east", "asia_se"): 70,
    ("asia_east", "oceania"): 110,
    ("asia_se", "asia_se"): 20,
    ("asia_se", "oceania"): 95,
    ("oceania", "oceania"): 20,
}


def rtt_ms(a: str, b: str) -> float:
    """Median RTT between two regions in milliseconds."""
    return _RTT_MS.get((a, b)) or _RTT_MS[(b, a)]


def one_way_matrix() -> list[list[float]]:
    """One-way base latency in seconds, indexed by region number."""
    return [[rtt_ms(a, b) / 2000.0 for b in REGIONS] for a in REGIONS]


# Approximate positions on a unit square (x ~ longitude, y ~ latitude), used by
# the geographic topology so that nearby regions are also close in the graph.
REGION_CENTRES: tuple[tuple[float, float], ...] = (
    (0.28, 0.68),  # na_east
    (0.14, 0.66),  # na_west
    (0.52, 0.75),  # eu
    (0.33, 0.30),  # sa
    (0.85, 0.65),  # asia_east
    (0.78, 0.45),  # asia_se
    (0.90, 0.20),  # oceania
)


@dataclass(frozen=True)
class LatencyParams:
    """Latency model. `model="regions"` is the realistic one; `"fixed"` gives
    every link exactly `fixed_s` seconds, for analytic tests."""

    model: str = "regions"
    fixed_s: float = 0.05
    access_median_s: float = 0.005
    access_sigma: float = 0.6

    def validate(self) -> None:
        if self.model not in ("regions", "fixed"):
            raise UserError(f"latency model must be 'regions' or 'fixed', got {self.model!r}")
        if not 0.0 <= self.fixed_s <= 10.0:
            raise UserError(f"latency fixed_s must be in [0, 10] s, got {self.fixed_s}")
        if not 0.0 <= self.access_median_s <= 1.0:
            raise UserError(
                f"latency access_median_s must be in [0, 1] s, got {self.access_median_s}"
            )
        if not 0.0 <= self.access_sigma <= 3.0:
            raise UserError(f"latency access_sigma must be in [0, 3], got {self.access_sigma}")


def assign_regions(n: int, rng: random.Random) -> list[int]:
    """Region index of each node, drawn with REGION_WEIGHTS."""
    idx = list(range(len(REGIONS)))
    return rng.choices(idx, weights=REGION_WEIGHTS, k=n)


def access_latencies(n: int, params: LatencyParams, rng: random.Random) -> list[float]:
    """Per-node last-mile one-way latency in seconds (log-normal, capped at 200 ms)."""
    if params.model == "fixed":
        return [0.0] * n
    mu = math.log(params.access_median_s) if params.access_median_s > 0 else -50.0
    return [min(0.2, rng.lognormvariate(mu, params.access_sigma)) for _ in range(n)]
