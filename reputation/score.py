"""Global trust -> the gossip score's application-specific value (P5).

Pure functions the daemon plugs into gossip (`PeerScore.set_app_score`). With
the defaults, a peer of average trust gets 10, one of ten times the average
reaches 100 (the default accept_px_threshold: its peer exchange is accepted),
and a peer nobody trusts gets 0: reputation adds standing, it does not take
it away (the gossip behaviour penalties do that), so a new honest node is not
punished for being new.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from reputation.params import ScoreFeedParams


def app_specific_score(trust_units: float, params: ScoreFeedParams) -> float:
    """P5 value for a peer whose global trust is `trust_units` x the average."""
    if not math.isfinite(trust_units) or trust_units <= 0:
        return params.floor
    return min(params.cap, params.per_unit * trust_units)


def app_scores(global_trust: Mapping[bytes, float], params: ScoreFeedParams) -> dict[bytes, float]:
    """P5 values for every peer of a global trust vector (shares summing to 1)."""
    n = len(global_trust)
    return {peer: app_specific_score(t * n, params) for peer, t in global_trust.items()}
