"""What the router tells its driver, and the counters it keeps.

Events are plain slotted dataclasses collected by `GossipRouter.events()`; the
driver (trio daemon or simulator) acts on them: hands deliveries to the
application, runs async validators, disconnects misbehaving peers, dials PX
candidates. Counters are one flat dataclass per router so 10^5 simulated
routers cost 10^5 small objects, not 10^5 registries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from gossip.validation import ValidationResult
from gossip.wire import PeerInfo


@dataclass(slots=True)
class Delivered:
    """An accepted message for a topic we subscribe to, first time seen.

    `source_peer` is the author when known (StrictSign), else None;
    `received_from` is the neighbour it came from (our own peer id for our publishes).
    """

    topic: str
    msg_id: bytes
    data: bytes
    source_peer: bytes | None
    received_from: bytes


@dataclass(slots=True)
class ValidationRequest:
    """Validate asynchronously, then call `router.validation_done(msg_id, result, now)`."""

    msg_id: bytes
    topic: str
    data: bytes
    received_from: bytes


@dataclass(slots=True)
class PeerGraylisted:
    peer: bytes
    score: float


@dataclass(slots=True)
class PeerShouldDisconnect:
    peer: bytes
    reason: str


@dataclass(slots=True)
class PeerExchange:
    """Peers offered in a PRUNE by a peer whose score is at least accept_px_threshold."""

    topic: str
    from_peer: bytes
    candidates: list[PeerInfo] = field(default_factory=list)


Event = Delivered | ValidationRequest | PeerGraylisted | PeerShouldDisconnect | PeerExchange


@dataclass(slots=True)
class RouterMetrics:
    rpcs_received: int = 0
    rpcs_sent: int = 0
    frames_sent: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    malformed_frames: int = 0
    rpcs_from_unknown_peers: int = 0
    graylisted_rpcs: int = 0
    subs_refused: int = 0
    msgs_received: int = 0
    msgs_duplicate: int = 0
    msgs_unsubscribed_topic: int = 0
    msgs_policy_rejected: int = 0
    msgs_delivered: int = 0
    msgs_rejected: int = 0
    msgs_ignored: int = 0
    msgs_validation_overflow: int = 0
    msgs_forwarded: int = 0
    msgs_published: int = 0
    msgs_skipped_idontwant: int = 0
    msgs_unqueued_held: int = 0  # taken back from a queue: the peer has it (its copy, IDONTWANT)
    queue_overflow: int = 0
    ihave_sent: int = 0
    ihave_received: int = 0
    ihave_ignored: int = 0
    iwant_sent: int = 0
    iwant_received: int = 0
    iwant_served: int = 0
    iwant_refused: int = 0
    idontwant_sent: int = 0
    idontwant_received: int = 0
    graft_sent: int = 0
    graft_received: int = 0
    prune_sent: int = 0
    prune_received: int = 0
    px_offered: int = 0
    px_accepted: int = 0
    px_refused: int = 0
    broken_promises: int = 0
    heartbeats: int = 0


class ScoreObserver(Protocol):
    """What the router tells the peer score, as it happens (gossip/score.py's
    PeerScore is the one implementation): connections, mesh changes from
    gossip/mesh.py, each message's fate, and penalties. The router asks it only
    for `score` and calls `refresh` at each heartbeat. Injected
    (`GossipRouter(score=...)`), or built from `score_params`."""

    def add_peer(self, peer: bytes, now: float, ip: str | None = None) -> None: ...
    def remove_peer(self, peer: bytes, now: float) -> None: ...
    def set_ip(self, peer: bytes, ip: str | None) -> None: ...
    def graft(self, peer: bytes, topic: str, now: float) -> None: ...
    def prune(self, peer: bytes, topic: str, now: float) -> None: ...
    def validate_message(self, msg_id: bytes, peer: bytes, topic: str, now: float) -> None: ...
    def deliver_message(self, msg_id: bytes, peer: bytes, topic: str, now: float) -> None: ...
    def duplicate_message(self, msg_id: bytes, peer: bytes, topic: str, now: float) -> None: ...
    def reject_message(
        self, msg_id: bytes, peer: bytes, topic: str, result: ValidationResult, now: float
    ) -> None: ...
    def reject_unvalidated(self, peer: bytes, topic: str, now: float) -> None: ...
    def add_penalty(self, peer: bytes, count: int) -> None: ...
    def set_app_score(self, peer: bytes, value: float) -> None: ...
    def score(self, peer: bytes, now: float) -> float: ...
    def refresh(self, now: float) -> None: ...
