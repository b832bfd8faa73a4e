"""What the market's `min_rating` constraint reads: a rating in basis points (0..10000).

An order's author is rated by what this node knows of it. A hub owner (an ASK's
author) by the status of the hub wallet it announced: safe 100 %, checked 75 %,
unverified 25 %, suspected or fake 0 (a bad status wins over any trust). Any
author also by its global trust: an average peer 50 %, twice the average or
more 100 %. The higher of the two counts, so a consumer (rated by hubs through
its BID) has a rating once peers trust it, and a hub has one once it is known.
"""

from __future__ import annotations

import math

from reputation.state import HubStatus

RATING_MAX = 10_000

STATUS_RATING: dict[HubStatus, int] = {
    HubStatus.UNKNOWN: 0,
    HubStatus.UNVERIFIED: 2_500,
    HubStatus.CHECKED: 7_500,
    HubStatus.SAFE: 10_000,
    HubStatus.SUSPECTED: 0,
    HubStatus.FAKE: 0,
}
PER_TRUST_UNIT = 5_000  # basis points for a peer of average global trust


def trust_rating(units: float) -> int:
    if not math.isfinite(units) or units <= 0:
        return 0
    return min(RATING_MAX, round(units * PER_TRUST_UNIT))


def rating_of(status: HubStatus | None, units: float) -> int:
    """`status`: of the hub the author announced (None: it announced none)."""
    if status is not None and status.bad:
        return 0
    by_status = STATUS_RATING[status] if status is not None else 0
    return max(by_status, trust_rating(units))
