"""Plug hub verification into the gossip validator (gossip/validators.py).

The validator runs inside the router's synchronous validation and may not wait for
the chain, so `ChainHubCheck` answers from the verifier's cache at once and queues
unknown hubs: the announcement is IGNOREd (PENDING) until `refresh()` has looked the
hub up, after which the hub's next re-announcement gets the real verdict. The daemon
calls `refresh()` off the event loop (it does blocking JSON-RPC), e.g.
`await trio.to_thread.run_sync(hub_check.refresh)` every few seconds. With the
embedded chain, where a lookup is an in-process call, `inline=True` verifies at once.

Wiring (unregistered hubs must be REJECTed, so turn `reject_failed_hubs` on):

    verifier = HubVerifier(system, VerifierParams(min_frozen_funds=...), clock=time.monotonic)
    hub_check = ChainHubCheck(verifier)
    validator = MessageValidator(
        ValidatorParams(domain=domain, reject_failed_hubs=True),
        clock=time.time,
        hub_check=hub_check,
    )
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from contracts.errors import ChainError
from contracts.verify import HubVerification, HubVerifier
from gossip.hubs import HubAnnouncement
from gossip.validators import HubCheck


@dataclass
class HubCheckCounters:
    pending: int = 0
    lookups: int = 0
    chain_errors: int = 0
    last_error: str = ""


@dataclass
class ChainHubCheck:
    """A `HubChainCheck` (gossip.validators) backed by a HubVerifier."""

    verifier: HubVerifier
    inline: bool = False  # verify on the spot (embedded chain); else queue for refresh()
    max_pending: int = 1_024
    counters: HubCheckCounters = field(default_factory=HubCheckCounters)

    def __post_init__(self) -> None:
        if self.max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {self.max_pending}")
        self._pending: OrderedDict[tuple[bytes, bytes], None] = OrderedDict()
        # hubs asked about lately, so that an event about one re-checks it at once
        self._recent: OrderedDict[bytes, bytes] = OrderedDict()
        # __call__ runs on the event loop while refresh() runs in a worker thread
        self._lock = threading.Lock()

    def __call__(self, announcement: HubAnnouncement, now: float) -> HubCheck:
        wallet, owner = announcement.wallet, announcement.owner
        with self._lock:
            self._recent[bytes(wallet)] = bytes(owner)
            self._recent.move_to_end(bytes(wallet))
            while len(self._recent) > self.max_pending:
                self._recent.popitem(last=False)
        if self.inline:
            try:
                return to_hub_check(self.verifier.verify(wallet, owner))
            except ChainError as exc:
                self._note_error(exc)
                return HubCheck.PENDING
        cached = self.verifier.peek(wallet, owner)
        if cached is not None:
            return to_hub_check(cached)
        key = (bytes(wallet), bytes(owner))
        with self._lock:
            self._pending[key] = None
            self._pending.move_to_end(key)
            while len(self._pending) > self.max_pending:  # a flood of fake hubs stays bounded
                self._pending.popitem(last=False)
            self.counters.pending += 1
        return HubCheck.PENDING

    def refresh(self) -> list[HubVerification]:
        """Poll new chain events, then look up every queued hub and every recently seen
        hub an event touched. Blocking (JSON-RPC): run it in a thread."""
        try:
            touched = self.verifier.poll()
        except ChainError as exc:
            self._note_error(exc)
            return []
        with self._lock:
            for address in touched:
                wallet = bytes.fromhex(address[2:])
                owner = self._recent.get(wallet)
                if owner is not None:
                    self._pending[(wallet, owner)] = None
            todo = list(self._pending)
            self._pending.clear()
        done: list[HubVerification] = []
        for i, (wallet, owner) in enumerate(todo):
            try:
                done.append(self.verifier.verify(wallet, owner))
                self.counters.lookups += 1
            except ChainError as exc:
                self._note_error(exc)
                with self._lock:  # the chain is down: try these again next time
                    for key in todo[i:]:
                        self._pending[key] = None
                break
        return done

    @property
    def queued(self) -> int:
        return len(self._pending)

    def _note_error(self, exc: ChainError) -> None:
        self.counters.chain_errors += 1
        self.counters.last_error = str(exc)


def to_hub_check(verification: HubVerification) -> HubCheck:
    return HubCheck.from_verdict(verification.verdict.value)
