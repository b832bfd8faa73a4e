"""The matching core: SONM's Market.OpenDeal rule over an indexed book of ASKs.

Sans-IO (tests/test_sans_io.py): no clock, no sockets, no randomness; the daemon
feeds it what gossip delivers (add, cancel, expire with its own `now`) and passes
the rating lookup in. See docs/market.md ("Matching rule", "Explain", "Index").
"""

from __future__ import annotations

from p2pnode.market.matching.errors import CallerError, ConfigError, RemoteOrderError
from p2pnode.market.matching.explain import Explanation, explain
from p2pnode.market.matching.index import PRICE_LIMIT, AskIndex, IndexParams, Match
from p2pnode.market.matching.rule import (
    CONSTRAINTS,
    OrderView,
    RatingLookup,
    failures,
    matches,
    no_ratings,
)

__all__ = [
    "CONSTRAINTS",
    "PRICE_LIMIT",
    "AskIndex",
    "CallerError",
    "ConfigError",
    "Explanation",
    "IndexParams",
    "Match",
    "OrderView",
    "RatingLookup",
    "RemoteOrderError",
    "explain",
    "failures",
    "matches",
    "no_ratings",
]
