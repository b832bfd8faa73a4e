"""Quotas that keep one signer or one peer from owning a node's gossip capacity.

Two limits, both checked before a message's signature is recovered, so a flood costs
the node a decode and a table lookup, not an elliptic-curve operation:

- `AuthorQuota`: how many signed messages of one signer (orders and cancels count
  apart) may be live at once. Only *accepted* messages are counted, so a forger who
  claims an honest author's address cannot fill that author's quota. A message over
  the quota is IGNOREd: it is neither stored nor forwarded, so one key cannot push
  honest orders out of anybody's book, and the flood stops at the first honest hop.
- `PeerRateLimit`: a token bucket per forwarding peer, over every application topic.
  The excess is IGNOREd and reported to the caller, which charges the peer's score
  (behaviour penalty, P7), so a peer that keeps flooding is graylisted.

Both tables are bounded: authors and peers beyond their caps are forgotten oldest
first (a forgotten author starts from zero, which only ever loosens the quota; the
book's own per-author cap still holds, see p2pnode/market/book.py).

Sans-IO: `now` comes from the caller.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass(frozen=True)
class QuotaParams:
    # live orders one signer may have in the network; a large hub has one ASK per
    # slot, so this is far above any honest supplier's slot count
    max_orders_per_author: int = 1000
    # live cancels one signer may have (cancels of unknown orders count too)
    max_cancels_per_author: int = 1000
    # signers tracked at once; beyond, the least recently active is forgotten
    max_authors: int = 100_000
    # messages entries tracked in total over all signers
    max_entries: int = 500_000
    # unique application messages per second a peer may forward to us, and the burst
    peer_rate: float = 1000.0
    peer_burst: float = 4000.0
    # forwarding peers tracked at once (far above any connection limit)
    max_peers: int = 10_000

    def validate(self) -> None:
        for name in (
            "max_orders_per_author",
            "max_cancels_per_author",
            "max_authors",
            "max_entries",
            "max_peers",
        ):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"{name}: must be an integer >= 1, got {value!r}")
        if not 0.0 < self.peer_rate <= 1e9:
            raise ValueError(f"peer_rate: must be in (0, 1e9] messages/s, got {self.peer_rate}")
        if not self.peer_rate <= self.peer_burst <= 1e12:
            raise ValueError(
                f"peer_burst: must be in [peer_rate={self.peer_rate}, 1e12], got {self.peer_burst}"
            )


@dataclass
class QuotaCounters:
    author_refused: int = 0
    rate_refused: int = 0
    forgotten_authors: int = 0
    forgotten_peers: int = 0


class AuthorQuota:
    """Live messages per (kind, signer), each counted until it expires."""

    def __init__(self, params: QuotaParams | None = None) -> None:
        self.params = params or QuotaParams()
        self.params.validate()
        # (kind, author) -> min-heap of expiry times; ordered by last activity
        self._live: OrderedDict[tuple[str, bytes], list[float]] = OrderedDict()
        self._entries = 0
        self.counters = QuotaCounters()

    def __len__(self) -> int:
        return self._entries

    def limit(self, kind: str) -> int:
        return (
            self.params.max_cancels_per_author
            if kind == "cancel"
            else self.params.max_orders_per_author
        )

    def live(self, kind: str, author: bytes, now: float) -> int:
        heap = self._live.get((kind, author))
        if heap is None:
            return 0
        self._expire(heap, now)
        return len(heap)

    def admits(self, kind: str, author: bytes, now: float) -> bool:
        """True when one more message of `kind` by `author` fits; counts a refusal."""
        if self.live(kind, author, now) < self.limit(kind):
            return True
        self.counters.author_refused += 1
        return False

    def full(self, kind: str, author: bytes) -> bool:
        """Whether `author` looked at its limit, expiries not yet taken off: a read
        that writes nothing, for another thread to use as a hint (`admits` decides)."""
        heap = self._live.get((kind, author))
        return heap is not None and len(heap) >= self.limit(kind)

    def record(self, kind: str, author: bytes, expires: float, now: float) -> None:
        """Count an accepted message until `expires`."""
        key = (kind, author)
        heap = self._live.get(key)
        if heap is None:
            heap = self._live[key] = []
        else:
            self._live.move_to_end(key)
            self._expire(heap, now)
        heapq.heappush(heap, expires)
        self._entries += 1
        self._enforce_caps()

    def _expire(self, heap: list[float], now: float) -> None:
        while heap and heap[0] < now:
            heapq.heappop(heap)
            self._entries -= 1

    def _enforce_caps(self) -> None:
        p = self.params
        while len(self._live) > p.max_authors or self._entries > p.max_entries:
            _, heap = self._live.popitem(last=False)
            self._entries -= len(heap)
            self.counters.forgotten_authors += 1


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class PeerRateLimit:
    """A token bucket per forwarding peer."""

    params: QuotaParams = field(default_factory=QuotaParams)
    counters: QuotaCounters = field(default_factory=QuotaCounters)

    def __post_init__(self) -> None:
        self.params.validate()
        self._buckets: OrderedDict[bytes, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, peer: bytes, now: float) -> bool:
        """Spend one token of `peer`'s bucket; False (and counted) when it is empty."""
        p = self.params
        bucket = self._buckets.get(peer)
        if bucket is None:
            bucket = self._buckets[peer] = _Bucket(p.peer_burst, now)
            if len(self._buckets) > p.max_peers:
                self._buckets.popitem(last=False)
                self.counters.forgotten_peers += 1
        else:
            self._buckets.move_to_end(peer)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(p.peer_burst, bucket.tokens + elapsed * p.peer_rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        self.counters.rate_refused += 1
        return False

    def forget(self, peer: bytes) -> None:
        self._buckets.pop(peer, None)
