"""Gossipsub router parameters, with the defaults of the v1.1/v1.2 specs.

The defaults are those of the spec and of go-libp2p-pubsub (the reference
implementation other peers run), so a node joining a mixed network behaves as
they expect. Knobs beyond the spec (outbound queue bound, per-peer topic cap,
topic name length, unknown topics per peer, malformed-frame tolerance) exist
because an unbounded structure fed by a remote peer is a memory leak an
attacker controls.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Protocol, TypeVar

from gossip.errors import UserError


class ParamError(UserError):
    """A parameter is outside its allowed range; the message names it and the bound."""


@dataclass(frozen=True, slots=True)
class GossipSubParams:
    # Mesh degree (spec v1.0/v1.1).
    D: int = 6
    D_lo: int = 5
    D_hi: int = 12
    D_lazy: int = 6
    D_score: int = 4
    D_out: int = 2

    # Timing (seconds).
    heartbeat_initial_delay: float = 0.1
    heartbeat_interval: float = 1.0
    fanout_ttl: float = 60.0
    seen_ttl: float = 120.0

    # Message cache: windows kept, and windows advertised in IHAVE.
    mcache_len: int = 5
    mcache_gossip: int = 3
    gossip_factor: float = 0.25
    gossip_retransmission: int = 3

    # GRAFT/PRUNE.
    prune_backoff: float = 60.0
    unsubscribe_backoff: float = 10.0
    graft_flood_threshold: float = 10.0
    prune_peers: int = 16
    do_px: bool = False
    max_backoff: float = 3600.0  # cap on a backoff a remote peer may ask for

    # Opportunistic grafting.
    opportunistic_graft_ticks: int = 60
    opportunistic_graft_peers: int = 2

    # IHAVE/IWANT limits and promises.
    max_ihave_length: int = 5000
    max_ihave_messages: int = 10
    iwant_followup_time: float = 3.0

    # IDONTWANT (v1.2).
    idontwant_message_threshold: int = 1024
    idontwant_ttl_heartbeats: int = 3
    max_idontwant_length: int = 10
    max_idontwant_messages: int = 1000

    # Publishing.
    flood_publish: bool = True

    # Wire and resource bounds.
    max_rpc_size: int = 1 << 20
    max_queued_messages: int = 2048
    # One write to a peer carries at most this many queued messages and about this
    # many bytes of them (the first message always goes); the rest waits for the
    # next write. Bounds what one coalesced write holds up and how long it takes
    # (a write over max_rpc_size is still split into frames at that size). 60 KiB
    # with its framing fits one Yamux frame in one Noise transport message, which
    # is what each write costs on py-libp2p's transport, whatever its size.
    max_write_messages: int = 512
    max_write_bytes: int = 60 << 10
    max_topics_per_peer: int = 1024
    # Topic names a peer may make us hold: at most this many bytes each, and at most
    # max_unknown_topics_per_peer names we neither subscribe nor publish to (a
    # subscription beyond either is refused, counted and costs a behaviour penalty).
    max_topic_length: int = 256
    max_unknown_topics_per_peer: int = 32
    max_malformed_frames: int = 8

    def validate(self) -> GossipSubParams:
        """Check every bound; raise ParamError naming the first one broken."""

        def need(ok: bool, name: str, bound: str) -> None:
            if not ok:
                raise ParamError(f"GossipSubParams.{name}={getattr(self, name)!r}: must be {bound}")

        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool):
                continue
            if isinstance(v, int | float):
                need(v >= 0, f.name, ">= 0")
        need(self.D >= 1, "D", ">= 1")
        need(self.D_lo <= self.D, "D_lo", f"<= D ({self.D})")
        need(self.D_lo >= 1, "D_lo", ">= 1")
        need(self.D_hi >= self.D, "D_hi", f">= D ({self.D})")
        need(self.D_score <= self.D_hi, "D_score", f"<= D_hi ({self.D_hi})")
        need(self.D_out < self.D_lo, "D_out", f"< D_lo ({self.D_lo})")
        need(self.D_out <= self.D // 2, "D_out", f"<= D/2 ({self.D // 2})")
        need(self.heartbeat_interval > 0, "heartbeat_interval", "> 0")
        need(self.mcache_len >= 1, "mcache_len", ">= 1")
        need(self.mcache_gossip >= 1, "mcache_gossip", ">= 1")
        need(
            self.mcache_gossip <= self.mcache_len,
            "mcache_gossip",
            f"<= mcache_len ({self.mcache_len})",
        )
        need(self.gossip_factor <= 1.0, "gossip_factor", "in [0, 1]")
        need(self.seen_ttl > 0, "seen_ttl", "> 0")
        need(self.prune_backoff > 0, "prune_backoff", "> 0")
        need(self.unsubscribe_backoff > 0, "unsubscribe_backoff", "> 0")
        need(
            self.max_backoff >= self.prune_backoff,
            "max_backoff",
            f">= prune_backoff ({self.prune_backoff})",
        )
        need(self.opportunistic_graft_ticks >= 1, "opportunistic_graft_ticks", ">= 1")
        need(self.idontwant_ttl_heartbeats >= 1, "idontwant_ttl_heartbeats", ">= 1")
        need(self.max_rpc_size >= 1024, "max_rpc_size", ">= 1024 bytes")
        need(self.max_rpc_size <= 1 << 26, "max_rpc_size", "<= 64 MiB")
        need(self.max_queued_messages >= 1, "max_queued_messages", ">= 1")
        need(self.max_write_messages >= 1, "max_write_messages", ">= 1")
        need(self.max_write_bytes >= 1, "max_write_bytes", ">= 1 byte")
        need(self.max_topics_per_peer >= 1, "max_topics_per_peer", ">= 1")
        need(self.max_topic_length >= 1, "max_topic_length", ">= 1 byte")
        need(self.max_topic_length <= 65536, "max_topic_length", "<= 65536 bytes")
        return self


class _Validates(Protocol):
    def validate(self) -> object: ...


_P = TypeVar("_P", bound=_Validates)
# The last parameters object of each type that passed validate(). They are frozen,
# so one that passed stays valid; a simulator builds 10^5 routers from one object,
# and validating it for each was two thirds of a 10^5-node world's build. Holding
# the object (not its id) keeps its id from being reused by another.
_LAST_VALID: dict[type, object] = {}


def validated(params: _P) -> _P:
    """`params`, validated unless it is the very object validated last (ParamError
    or ScoreParameterError, as its own validate(), when it breaks a bound)."""
    if _LAST_VALID.get(type(params)) is not params:
        params.validate()
        _LAST_VALID[type(params)] = params
    return params
