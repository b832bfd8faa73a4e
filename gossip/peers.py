"""Per-peer bookkeeping of the router, shaped for memory.

A simulator holds 10^5 routers times their peers: a peer is a slotted object
whose queues exist only while something is queued, peer collections are dicts
used as insertion-ordered sets, and peers with the same subscriptions share one
interned set of topic names (gossip/topicsets.py: held weakly, so a set, and
the names a remote peer chose, lives exactly as long as some peer subscribes
to it).
"""

from __future__ import annotations

from gossip.topicsets import NO_TOPICS
from gossip.wire import Control, Message, SubOpts

# A set of peers that is walked in insertion order. The router samples and
# shuffles what it walks, so with a plain set of bytes the picks of a seeded rng
# would depend on the process's hash seed (PYTHONHASHSEED); a dict keeps the
# order of the events that built it, is as fast, and is smaller than a set
# beyond a handful of members.
PeerSet = dict[bytes, None]
NO_PEERS: PeerSet = {}


class Peer:
    """What every connected peer needs. Rare state (IDONTWANTs received, malformed
    frames, queue overflows) lives in the router's lazily created maps instead:
    a simulator holds 10^5 routers x their peers of these."""

    __slots__ = ("outbound", "protocol", "q_ctl", "q_msgs", "q_subs", "topics")

    def __init__(self, protocol: str, outbound: bool) -> None:
        self.protocol = protocol
        self.outbound = outbound
        # interned by the router: peers with the same subscriptions share one frozenset
        self.topics: frozenset[str] = NO_TOPICS
        # message id -> message, in the order queued: keyed so that a copy the peer
        # sends us while ours still waits for the write can be taken back (it has it)
        self.q_msgs: dict[bytes, Message] | None = None
        self.q_subs: list[SubOpts] | None = None
        self.q_ctl: Control | None = None
