"""Which deal requests a hub has already heard: a signed `DealRequest` is good once.

Without this, anyone holding a copy of a consumer's signed request (the hub itself,
or a peer the consumer sent it to by mistake) could send it again while it is valid
and reserve the hub's slot in that consumer's name, again and again, keeping the
slot from everyone. Each request's `(consumer, nonce)` is spent the moment its
signature and window check out, whatever the hub answers, and stays spent until the
request expires (at most `dealwire.MAX_REQUEST_WINDOW` seconds; after that the
window check refuses it anyway). The spent nonces live in the gossip replay guard's
structure (`gossip.replay.ReplayGuard`, bounded per consumer and in total) and in a
SQLite table of their own, written before the hub answers, so a hub restarted
after a kill -9 refuses a replay just the same.

A consumer counts its nonces upward (milliseconds since the epoch, one more than the
last when two requests fall in the same millisecond), so its requests never collide.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gossip.replay import ReplayGuard, ReplayParams
from p2pnode.market.dealwire import DealRequest
from p2pnode.replay_store import ReplayStore
from p2pnode.storage import Storage

log = logging.getLogger(__name__)

TABLE = "deal_request_nonces"
_KEY = b"deal-request:"


@dataclass(frozen=True)
class RequestNonceParams:
    max_entries: int = 100_000  # spent nonces held, over all consumers
    max_per_key: int = 1_024  # per consumer; beyond it the oldest fold into a floor

    def validate(self) -> None:
        ReplayParams(self.max_entries, self.max_per_key).validate()


class RequestNonces:
    def __init__(
        self, storage: Storage, now: float, params: RequestNonceParams | None = None
    ) -> None:
        params = params or RequestNonceParams()
        params.validate()
        self.guard = ReplayGuard(ReplayParams(params.max_entries, params.max_per_key))
        self.store = ReplayStore(storage, table=TABLE)
        self.loaded = self.store.load_into(self.guard, now)

    def admit(self, req: DealRequest, now: float) -> str | None:
        """Spend the request's nonce; None when it was fresh, else why it is refused.
        Call once the signature and the validity window are checked."""
        key = _KEY + req.consumer
        if self.guard.seen(key, req.nonce):
            return f"request replayed: nonce {req.nonce} of this consumer was used already"
        # one second past valid_until: the window check still lets the request in
        # at valid_until itself, and the guard forgets at `expires`
        self.guard.record(key, req.nonce, req.valid_until + 1.0, monotonic=False, now=now)
        try:
            self.store.flush(self.guard, now=now)
        except Exception as exc:  # kept in memory and requeued: the next flush writes it
            log.warning("market: cannot persist a deal request's nonce: %s", exc)
        return None


def next_nonce(last: int, now: float) -> int:
    """A consumer's next request nonce: its clock in milliseconds, strictly above `last`."""
    return max(last + 1, int(now * 1000))
