"""Per-peer bookkeeping of the router, shaped for memory.

A simulator holds 10^5 routers times their peers: a peer is a slotted object
whose queues exist only while something is queued, peer collections are dicts
used as insertion-ordered sets, and peers with the same subscriptions share one
interned set of topic names. The intern cache holds its sets weakly, so a set,
and the names a remote peer chose, lives exactly as long as some peer
subscribes to it.
"""

from __future__ import annotations

import weakref

from gossip.wire import Control, Message, SubOpts


class TopicSet(frozenset[str]):
    """A frozenset the intern cache can hold weakly (a plain frozenset takes no weakref)."""


NO_TOPICS: frozenset[str] = TopicSet()

# A set of peers that is walked in insertion order. The router samples and
# shuffles what it walks, so with a plain set of bytes the picks of a seeded rng
# would depend on the process's hash seed (PYTHONHASHSEED); a dict keeps the
# order of the events that built it, is as fast, and is smaller than a set
# beyond a handful of members.
PeerSet = dict[bytes, None]
NO_PEERS: PeerSet = {}
# The intern cache of subscription sets, shared by every router of the process:
# hash -> weak reference to the one set with that hash. Weak, so a set (and the
# topic names in it) lives only as long as some peer subscribes to it: when a
# peer leaves, what it made us hold goes with it.
_TOPIC_SETS: dict[int, _TopicSetRef] = {}


def intern_topics(topics: frozenset[str]) -> frozenset[str]:
    """One shared set per distinct subscription set, across all routers of the
    process (memory: 10^5 simulated routers x their peers). A pure cache, held
    weakly: it never keeps a set nobody uses."""
    h = hash(topics)
    ref = _TOPIC_SETS.get(h)
    if ref is not None:
        got = ref()
        if got is not None and got == topics:
            return got
    new = TopicSet(topics)
    _TOPIC_SETS[h] = _TopicSetRef(new, h)
    return new


class _TopicSetRef(weakref.ref[TopicSet]):
    """A weak reference that removes its own cache entry when its set dies."""

    __slots__ = ("key",)

    def __new__(cls, ts: TopicSet, key: int) -> _TopicSetRef:
        return super().__new__(cls, ts, _forget_topic_set)

    def __init__(self, ts: TopicSet, key: int) -> None:
        super().__init__(ts, _forget_topic_set)  # type: ignore[call-arg]
        self.key = key


def _forget_topic_set(ref: weakref.ref[TopicSet]) -> None:
    key = ref.key if isinstance(ref, _TopicSetRef) else None
    if key is not None and _TOPIC_SETS.get(key) is ref:
        del _TOPIC_SETS[key]


def interned_topic_sets() -> int:
    """How many subscription sets the intern cache holds (memory accounting, tests)."""
    return len(_TOPIC_SETS)


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
