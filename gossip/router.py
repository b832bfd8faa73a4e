"""Sans-IO gossipsub v1.1/v1.2 router.

One `GossipRouter` per node. Drivers feed it frames and the time, collect frames
to send and events. It follows the gossipsub specs and go-libp2p-pubsub's
gossipsub.go so that go/js/rust peers can share topics with us:

- mesh of D (D_lo..D_hi) peers per subscribed topic, kept by the heartbeat, with
  D_score peers kept by score and D_out outbound peers when oversubscribed;
- fanout (TTL) for topics we publish to without subscribing; flood publishing;
- mcache + IHAVE/IWANT gossip to D_lazy / gossip_factor non-mesh peers, with
  per-heartbeat IHAVE/IWANT limits and IWANT promises that cost broken-promise
  penalties;
- GRAFT/PRUNE with backoff (penalties for GRAFT in backoff), peer exchange gated
  by accept_px_threshold; opportunistic grafting;
- seen cache with TTL; IDONTWANT (v1.2) for large messages;
- the peer score (gossip/score.py) as an observer of what happens, and the
  five thresholds;
- outbound queues per peer, drained as coalesced frames (one frame carries all
  that is queued for a peer, split only at max_rpc_size), bounded for forwarded
  messages; our own publishes are never dropped silently.

The router is cut along its seams, one concern a module:

- this module: peers and their subscriptions, publishing, receiving and
  validating messages, and the heartbeat that drives the rest;
- gossip/mesh.py: every mesh, fanout and backoff transition (GRAFT, PRUNE,
  joins, leaves, heartbeat maintenance);
- gossip/lazy.py: IHAVE/IWANT/IDONTWANT gossip and IWANT promises;
- gossip/outbound.py: the per-peer outbound queues and their draining;
- gossip/peers.py: per-peer state; gossip/topicsets.py: the interned subscription sets;
- gossip/wire.py: the codec, including the coalesced frame encoding.

lazy.py, mesh.py and outbound.py are base classes of GossipRouter (each on the
next) whose slots are part of it, so the split costs no object per router.
Memory matters (10^5 routers in one simulator process): per-peer state is a
slotted object whose optional parts are allocated on first use, and the
router's own maps are created lazily as well.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gossip.errors import LocalError, UserError
from gossip.events import (
    Delivered,
    Event,
    PeerGraylisted,
    PeerShouldDisconnect,
    RouterMetrics,
    ScoreObserver,
    ValidationRequest,
)
from gossip.lazy import LazyGossip
from gossip.mcache import MessageCache
from gossip.mesh import (
    BACKOFF_SWEEP_TICKS,
    PROTOCOL_V10,
    PROTOCOL_V11,
    PROTOCOL_V12,
    PROTOCOLS,
    PeerRecordSource,
)
from gossip.msgid import SignPolicy, StrictNoSign, StrictSign
from gossip.params import GossipSubParams, validated
from gossip.peers import NO_PEERS, Peer, PeerSet
from gossip.rng import RandomSource
from gossip.topicsets import intern_topics, interned_topic_sets
from gossip.validation import ValidationResult
from gossip.wire import RPC, Message, SubOpts, WireError, decode_rpc, split_frames

__all__ = [
    "PROTOCOLS",
    "PROTOCOL_V10",
    "PROTOCOL_V11",
    "PROTOCOL_V12",
    "DuplicatePublishError",
    "GossipRouter",
    "MessageTooLargeError",
    "NoPeersError",
    "PeerRecordSource",
    "PublishError",
    "ScoreObserver",
    "Validator",
    "interned_topic_sets",
]

Validator = Callable[[str, bytes, bytes], ValidationResult]

# Bytes a message's frame adds around its encoding at most (the RPC field key and
# length, the frame's length prefix): a publish must fit max_rpc_size with them.
FRAME_OVERHEAD = 16
# Messages waiting for an asynchronous verdict, by default; beyond it a message
# is dropped unseen (counted) and may be accepted when it arrives again.
DEFAULT_MAX_PENDING_VALIDATIONS = 4096


class PublishError(LocalError):
    """A publish could not be sent; the caller must know, nothing is dropped silently."""


class NoPeersError(PublishError):
    """No connected peer (above the publish threshold) subscribes to the topic."""


class DuplicatePublishError(PublishError):
    """The message id is already in the seen cache (same payload under StrictNoSign)."""


class MessageTooLargeError(UserError):
    """The payload cannot fit in one RPC of max_rpc_size."""


# One SubOpts(True, topic) per topic this process's routers subscribe to, shared
# by every hello they send: a SubOpts is never changed once made, and a
# simulator's 10^5 routers send 2x10^6 hellos at start-up, each read by its
# receiver long after it was made (a cache miss per fresh object). Holds only
# topics a local caller subscribed to, never a remote peer's, and at most
# _HELLO_SUBS_MAX of them.
_HELLO_SUBS: dict[str, SubOpts] = {}
_HELLO_SUBS_MAX = 1024

# The interned one-topic subscription set of each of those topics: what a peer's
# set becomes when its hello names one of our topics, taken here without
# building and hashing a set for intern_topics (2x10^6 hellos in a simulator's
# start-up). Same bound and same keys as _HELLO_SUBS.
_SOLO_TOPICS: dict[str, frozenset[str]] = {}


def _hello_sub(topic: str) -> SubOpts:
    so = _HELLO_SUBS.get(topic)
    if so is None:
        so = SubOpts(True, topic)
        if len(_HELLO_SUBS) < _HELLO_SUBS_MAX:
            _HELLO_SUBS[topic] = so
            _SOLO_TOPICS[topic] = intern_topics(frozenset((topic,)))
    return so


def _zero_score(peer: bytes) -> float:
    return 0.0


class _Pending:
    __slots__ = ("msg", "peer")

    def __init__(self, msg: Message, peer: bytes) -> None:
        self.msg = msg
        self.peer = peer


class GossipRouter(LazyGossip):
    """The gossipsub state machine of one node. See the module docstring."""

    __slots__ = (
        "_accept_px_th",
        "_events",
        "_gossip_th",
        "_graylist_th",
        "_graylisted",
        "_malformed",
        "_mcache",
        "_next_hb",
        "_og_th",
        "_pending",
        "_publish_th",
        "_score",
        "_seen",
        "_seqno",
        "_tick",
        "local_peer",
        "max_pending_validations",
        "metrics",
        "params",
        "peer_record",
        "rng",
        "sign_policy",
        "thresholds",
        "validator",
    )

    def __init__(
        self,
        *,
        local_peer: bytes,
        params: GossipSubParams | None = None,
        rng: RandomSource,
        score_params: Any = None,
        thresholds: Any = None,
        sign_policy: SignPolicy | None = None,
        validator: Validator | None = None,
        peer_record: PeerRecordSource | None = None,
        max_pending_validations: int = DEFAULT_MAX_PENDING_VALIDATIONS,
        score: ScoreObserver | None = None,
    ) -> None:
        self.local_peer = local_peer
        self.params = validated(params or GossipSubParams())
        self.rng = rng
        self.sign_policy: SignPolicy = sign_policy if sign_policy is not None else StrictNoSign()
        self.validator = validator
        self.peer_record = peer_record
        self.max_pending_validations = max_pending_validations
        self.metrics = RouterMetrics()

        # the peer score observes what happens here: injected, or built from score_params
        self._score: ScoreObserver | None = score
        self.thresholds = thresholds
        if score is None and score_params is not None:
            from gossip.score import PeerScore  # the scoring module is optional until used

            if thresholds is None:
                from gossip.score_params import PeerScoreThresholds

                self.thresholds = PeerScoreThresholds()
            self._score = PeerScore(score_params, self.thresholds)
        elif score is not None and thresholds is None:
            self.thresholds = getattr(score, "thresholds", None)
        th = self.thresholds
        self._gossip_th = float(th.gossip_threshold) if th is not None else 0.0
        self._publish_th = float(th.publish_threshold) if th is not None else 0.0
        self._graylist_th = float(th.graylist_threshold) if th is not None else 0.0
        self._accept_px_th = float(th.accept_px_threshold) if th is not None else 0.0
        self._og_th = float(th.opportunistic_graft_threshold) if th is not None else 0.0

        self._peers: dict[bytes, Peer] = {}
        # peer collections are dicts used as insertion-ordered sets (see PeerSet)
        self._topic_peers: dict[str, PeerSet] = {}
        self._mesh: dict[str, PeerSet] = {}
        # fanout: topics we publish to without subscribing; both maps exist together,
        # and only while some topic is in fanout (rare for a subscribed node)
        self._fanout: dict[str, PeerSet] | None = None
        self._fanout_last: dict[str, float] | None = None
        self._backoff: dict[str, dict[bytes, float]] | None = None
        self._seen: dict[bytes, float] = {}
        self._mcache = MessageCache(self.params.mcache_len, self.params.mcache_gossip)
        self._promises: dict[bytes, dict[bytes, float]] | None = None
        self._peerhave: dict[bytes, int] | None = None
        self._iasked: dict[bytes, int] | None = None
        self._peerdontwant: dict[bytes, int] | None = None
        # per peer, each None until first needed (rare: see gossip.peers.Peer)
        self._dontwant: dict[bytes, dict[bytes, int]] | None = None  # id -> expiry tick
        self._malformed: dict[bytes, int] | None = None
        self._overflowed: dict[bytes, None] | None = None
        self._pending: dict[bytes, _Pending] | None = None
        self._graylisted: set[bytes] | None = None
        self._dirty: dict[bytes, None] = {}
        self._events: list[Event] = []
        self._next_hb: float | None = None
        self._tick = 0
        self._seqno = -1

    # ------------------------------------------------------------ time

    def _touch(self, now: float) -> None:
        if self._next_hb is None:
            self._next_hb = now + self.params.heartbeat_initial_delay

    def next_deadline(self) -> float | None:
        return self._next_hb

    def on_timer(self, now: float) -> None:
        self._touch(now)
        assert self._next_hb is not None
        if now < self._next_hb:
            return
        self.heartbeat(now)
        interval = self.params.heartbeat_interval
        self._next_hb += interval
        if self._next_hb <= now:  # the driver fell behind: skip, do not burst
            self._next_hb = now + interval

    # ------------------------------------------------------------ scoring helpers

    def set_app_score(self, peer: bytes, value: float) -> None:
        """P5, the application's opinion of a peer (reputation's global trust).
        A no-op when scoring is off."""
        if self._score is not None:
            self._score.set_app_score(peer, value)

    @property
    def peer_score(self) -> ScoreObserver | None:
        """The PeerScore object (for P5 app scores from reputation), or None when off."""
        return self._score

    # ------------------------------------------------------------ peers

    def add_peer(
        self, peer: bytes, protocol: str, outbound: bool, now: float, ip: str | None = None
    ) -> None:
        if self._next_hb is None:  # _touch, inlined (10^5 simulated routers add 20 peers each)
            self._next_hb = now + self.params.heartbeat_initial_delay
        if protocol not in PROTOCOLS:
            raise UserError(
                f"unsupported pubsub protocol {protocol!r}; expected one of {PROTOCOLS}"
            )
        st = self._peers.get(peer)
        if st is not None:
            st.protocol = protocol
            st.outbound = st.outbound or outbound
            return
        st = self._peers[peer] = Peer(protocol, outbound)
        if self._score is not None:
            self._score.add_peer(peer, now, ip)
        if self._mesh:
            # the hello: tell the new peer everything we subscribe to (the new
            # peer's queue is empty: _queue_subs, inlined)
            subs = []
            for t in self._mesh:
                subs.append(_hello_sub(t))
            st.q_subs = subs
            self._dirty[peer] = None

    def remove_peer(self, peer: bytes, now: float) -> None:
        st = self._peers.pop(peer, None)
        if st is None:
            return
        for t in st.topics:
            self._leave_topic(peer, t, now)
        self._dirty.pop(peer, None)
        if self._graylisted is not None:
            self._graylisted.discard(peer)
        for rare in (self._dontwant, self._malformed, self._overflowed):
            if rare is not None:
                rare.pop(peer, None)
        if self._score is not None:
            self._score.remove_peer(peer, now)

    def peers(self) -> list[bytes]:
        return list(self._peers)

    def has_peer(self, peer: bytes) -> bool:
        return peer in self._peers

    def peer_protocol(self, peer: bytes) -> str | None:
        """The pubsub protocol id negotiated with `peer` (decides IDONTWANT), or None."""
        st = self._peers.get(peer)
        return None if st is None else st.protocol

    def mesh_peers(self, topic: str) -> set[bytes]:
        return set(self._mesh.get(topic, ()))

    def fanout_peers(self, topic: str) -> set[bytes]:
        return set(self._fanout.get(topic, ())) if self._fanout is not None else set()

    def topic_peers(self, topic: str) -> set[bytes]:
        return set(self._topic_peers.get(topic, ()))

    def subscriptions(self) -> list[str]:
        return list(self._mesh)

    # ------------------------------------------------------------ subscribe

    def subscribe(self, topic: str, now: float) -> None:
        self._touch(now)
        if topic in self._mesh:
            return
        so = _hello_sub(topic)
        for p in self._peers:
            self._queue_subs(p, [so])
        self._join_mesh(topic, now)

    def unsubscribe(self, topic: str, now: float) -> None:
        self._touch(now)
        if topic not in self._mesh:
            return
        for p in self._peers:
            self._queue_subs(p, [SubOpts(False, topic)])
        self._leave_mesh(topic, now)

    # ------------------------------------------------------------ publish

    def publish(self, topic: str, data: bytes, now: float) -> bytes:
        """Send our own message; returns its id. Raises PublishError when nobody gets it."""
        self._touch(now)
        policy = self.sign_policy
        if isinstance(policy, StrictSign):
            if self._seqno < 0:
                self._seqno = self.rng.getrandbits(63)
            self._seqno = (self._seqno + 1) & 0xFFFFFFFFFFFFFFFF
            msg = Message(topic, data, self.local_peer, self._seqno.to_bytes(8, "big"))
            policy.sign(msg)
        else:
            msg = Message(topic, data)
        raw = msg.encode()
        if len(raw) + FRAME_OVERHEAD > self.params.max_rpc_size:
            raise MessageTooLargeError(
                f"message of {len(raw)} bytes exceeds max_rpc_size={self.params.max_rpc_size}"
            )
        msg_id = policy.msg_id(msg)
        if msg_id in self._seen:
            raise DuplicatePublishError(f"message {msg_id.hex()} was already seen")

        pth = self._publish_th
        targets: list[bytes]
        if self.params.flood_publish:
            tpeers = self._topic_peers.get(topic, NO_PEERS)
            if self._score is None and pth <= 0.0:  # every score is 0: all pass
                targets = list(tpeers)
            else:
                targets = [p for p in tpeers if self.score_of(p, now) >= pth]
        else:
            mesh = self._mesh.get(topic)
            if mesh is not None:
                targets = list(mesh)
            else:
                targets = self._fanout_targets(topic, now, pth)
        if not targets:
            raise NoPeersError(f"no peer subscribed to {topic!r} to publish to")

        self._seen[msg_id] = now + self.params.seen_ttl
        self._mcache.put(msg_id, msg)
        self.metrics.msgs_published += 1
        for p in targets:
            self._queue_msg(p, msg_id, msg, own=True)
        if topic in self._mesh:
            self._events.append(Delivered(topic, msg_id, data, msg.from_, self.local_peer))
        return msg_id

    # ------------------------------------------------------------ receive

    def receive(self, peer: bytes, frame: bytes, now: float) -> None:
        """Consume one or more complete length-prefixed RPC frames from `peer`.

        Bad bytes never raise: they are counted, and a peer that keeps sending
        them gets a PeerShouldDisconnect event.
        """
        self._touch(now)
        st = self._peers.get(peer)
        if st is None:
            self.metrics.rpcs_from_unknown_peers += 1
            return
        self.metrics.bytes_received += len(frame)
        try:
            bodies, used = split_frames(frame, self.params.max_rpc_size)
            if used != len(frame):
                raise WireError("incomplete frame")
        except WireError as exc:
            self._count_malformed(peer, str(exc))
            return
        for body in bodies:
            try:
                rpc = decode_rpc(body)
            except WireError as exc:
                self._count_malformed(peer, str(exc))
                if peer not in self._peers:
                    return
                continue
            self.receive_rpc(peer, rpc, now)
            if peer not in self._peers:
                return

    def note_malformed(self, peer: bytes, reason: str) -> None:
        """The driver saw bad bytes from `peer` the router never got (e.g. a frame
        over max_rpc_size): count them like the router's own decode failures."""
        if peer in self._peers:
            self._count_malformed(peer, reason)

    def _count_malformed(self, peer: bytes, reason: str) -> None:
        self.metrics.malformed_frames += 1
        counts = self._malformed
        if counts is None:
            counts = self._malformed = {}
        n = counts[peer] = counts.get(peer, 0) + 1
        if n == self.params.max_malformed_frames + 1:
            self._events.append(PeerShouldDisconnect(peer, f"malformed frames: {reason}"))

    def receive_rpc(self, peer: bytes, rpc: RPC, now: float) -> None:
        if self._next_hb is None:  # _touch, inlined: this runs once per frame
            self._next_hb = now + self.params.heartbeat_initial_delay
        st = self._peers.get(peer)
        if st is None:
            self.metrics.rpcs_from_unknown_peers += 1
            return
        self.metrics.rpcs_received += 1
        if self._score is not None:
            s = self._score.score(peer, now)
            if s < self._graylist_th:
                self.metrics.graylisted_rpcs += 1
                gl = self._graylisted
                if gl is None:
                    gl = self._graylisted = set()
                if peer not in gl:
                    gl.add(peer)
                    self._events.append(PeerGraylisted(peer, s))
                    self._events.append(PeerShouldDisconnect(peer, "score below graylist"))
                return
            if self._graylisted is not None:
                self._graylisted.discard(peer)

        if rpc.subscriptions:
            self._handle_subscriptions(peer, st, rpc.subscriptions, now)
        if rpc.publish:
            self._handle_messages(peer, st, rpc.publish, now)
        ctl = rpc.control
        if ctl is not None:
            # the slots, not the properties: reading must not create the absent lists
            if ctl._ihave:
                self._handle_ihave(peer, ctl._ihave, now)
            if ctl._iwant:
                self._handle_iwant(peer, ctl._iwant, now)
            if ctl._graft:
                self._handle_graft(peer, st, ctl._graft, now)
            if ctl._prune:
                self._handle_prune(peer, ctl._prune, now)
            if ctl._idontwant:
                self._handle_idontwant(peer, ctl._idontwant)

    def _handle_subscriptions(self, peer: bytes, st: Peer, subs: list[SubOpts], now: float) -> None:
        params = self.params
        refused = 0
        for so in subs:
            t = so.topic
            if so.subscribe:
                if t in st.topics:
                    continue
                if (
                    len(st.topics) >= params.max_topics_per_peer
                    or len(t) > params.max_topic_length  # chars: never more than bytes
                    or (not t.isascii() and len(t.encode()) > params.max_topic_length)
                    or (
                        t not in self._mesh  # _knows_topic, inlined for the common case
                        and not self._knows_topic(t)
                        and self._unknown_topics(st) >= params.max_unknown_topics_per_peer
                    )
                ):
                    refused += 1
                    continue
                solo = None if st.topics else _SOLO_TOPICS.get(t)
                st.topics = solo if solo is not None else intern_topics(st.topics | {t})
                tp = self._topic_peers.get(t)
                if tp is None:
                    self._topic_peers[t] = {peer: None}
                else:
                    tp[peer] = None
            else:
                if t not in st.topics:
                    continue
                st.topics = intern_topics(st.topics - {t})
                self._leave_topic(peer, t, now)
        if refused:
            # a behaviour penalty per refused subscription: one over the budget
            # by mistake costs little, a flood drives the peer to the graylist
            self.metrics.subs_refused += refused
            if self._score is not None:
                self._score.add_penalty(peer, refused)

    def _knows_topic(self, topic: str) -> bool:
        """A topic we subscribe to or publish to (fanout)."""
        return topic in self._mesh or (self._fanout is not None and topic in self._fanout)

    def _unknown_topics(self, st: Peer) -> int:
        """How many of the peer's subscriptions name topics we do not know. The
        peer's set stays small (the budget plus the topics we know), so counting is
        cheap."""
        return sum(1 for t in st.topics if not self._knows_topic(t))

    def _handle_messages(self, peer: bytes, st: Peer, msgs: list[Message], now: float) -> None:
        m = self.metrics
        policy = self.sign_policy
        seen = self._seen
        sc = self._score
        big: dict[str, list[bytes]] | None = None
        for msg in msgs:
            m.msgs_received += 1
            topic = msg.topic
            if topic not in self._mesh:
                m.msgs_unsubscribed_topic += 1
                continue
            msg_id = policy.msg_id(msg)
            if msg_id in seen:
                m.msgs_duplicate += 1
                if st.q_msgs is not None:
                    self._unqueue_msg(st, msg_id)
                if sc is not None:
                    sc.duplicate_message(msg_id, peer, topic, now)
                continue
            reason = policy.check(msg)
            if reason is None and msg.from_ is not None and msg.from_ == self.local_peer:
                reason = "claims to be from us"
            if reason is not None:
                # never mark seen: a forged copy must not shadow the real message
                m.msgs_policy_rejected += 1
                if sc is not None:
                    sc.reject_unvalidated(peer, topic, now)
                continue
            seen[msg_id] = now + self.params.seen_ttl
            if self._promises is not None:
                self._promises.pop(msg_id, None)
            if sc is not None:
                sc.validate_message(msg_id, peer, topic, now)
            if len(msg.data) >= self.params.idontwant_message_threshold:
                if big is None:
                    big = {}
                big.setdefault(topic, []).append(msg_id)
            if self.validator is not None:
                try:
                    result = self.validator(topic, msg.data, peer)
                except Exception:  # a validator crashing on hostile input rejects it
                    result = ValidationResult.REJECT
                self._finish_validation(msg_id, msg, peer, result, now)
            else:
                pend = self._pending
                if pend is None:
                    pend = self._pending = {}
                if len(pend) >= self.max_pending_validations:
                    m.msgs_validation_overflow += 1
                    del seen[msg_id]  # may be retried when it arrives again
                    continue
                pend[msg_id] = _Pending(msg, peer)
                self._events.append(ValidationRequest(msg_id, topic, msg.data, peer))
        if big:
            self._send_idontwant(peer, big)

    def validation_done(self, msg_id: bytes, result: ValidationResult, now: float) -> None:
        """Report the verdict of an async validation asked for by a ValidationRequest."""
        pend = self._pending
        if pend is None:
            return
        p = pend.pop(msg_id, None)
        if p is None:
            return
        if not pend:
            self._pending = None
        self._finish_validation(msg_id, p.msg, p.peer, result, now)

    def _finish_validation(
        self, msg_id: bytes, msg: Message, peer: bytes, result: ValidationResult, now: float
    ) -> None:
        sc = self._score
        topic = msg.topic
        if result is ValidationResult.ACCEPT:
            self.metrics.msgs_delivered += 1
            if sc is not None:
                sc.deliver_message(msg_id, peer, topic, now)
            self._mcache.put(msg_id, msg)
            self._events.append(Delivered(topic, msg_id, msg.data, msg.from_, peer))
            self._forward(msg_id, msg, peer)
        else:
            if result is ValidationResult.REJECT:
                self.metrics.msgs_rejected += 1
            else:
                self.metrics.msgs_ignored += 1
            if sc is not None:
                sc.reject_message(msg_id, peer, topic, result, now)

    def _forward(self, msg_id: bytes, msg: Message, source: bytes) -> None:
        mesh = self._mesh.get(msg.topic)
        if not mesh:
            return
        author = msg.from_
        dontwant = self._dontwant
        n = 0
        for p in mesh:
            if p in (source, author):
                continue
            if dontwant is not None:
                dw = dontwant.get(p)
                if dw is not None and msg_id in dw:
                    self.metrics.msgs_skipped_idontwant += 1
                    continue
            self._queue_msg(p, msg_id, msg, own=False)
            n += 1
        self.metrics.msgs_forwarded += n

    # ------------------------------------------------------------ control handlers

    # ------------------------------------------------------------ heartbeat

    def heartbeat(self, now: float) -> None:
        p = self.params
        self.metrics.heartbeats += 1
        self._tick += 1
        self._new_gossip_budgets()
        sc = self._score

        if sc is not None:
            sc.refresh(now)  # decays by the whole intervals elapsed; cheap otherwise

        self._apply_broken_promises(now)
        self._expire_dontwant()
        overflowed = self._overflowed
        if overflowed is not None:
            self._overflowed = None
            if sc is not None:
                for peer in overflowed:
                    sc.add_penalty(peer, 1)

        scores: dict[bytes, float] = {}

        def remembered(peer: bytes) -> float:
            s = scores.get(peer)
            if s is None:
                s = scores[peer] = self.score_of(peer, now)
            return s

        # without scoring every score is 0: nothing to remember
        score: Callable[[bytes], float] = remembered if sc is not None else _zero_score

        tograft: list[tuple[bytes, str]] = []
        toprune: list[tuple[bytes, str, bool]] = []
        og_tick = self._score is not None and self._tick % p.opportunistic_graft_ticks == 0

        for topic, mesh in self._mesh.items():
            self._maintain_mesh(topic, mesh, now, score, og_tick, tograft, toprune)
            self._emit_gossip(topic, mesh, score)
        fanout = self._expire_fanout(now)
        for topic, fan in fanout.items() if fanout is not None else ():
            self._maintain_fanout(topic, fan, score)
            self._emit_gossip(topic, fan, score)
        self._send_mesh_changes(tograft, toprune, now)

        self._mcache.shift()
        self._expire_seen(now)
        if self._tick % BACKOFF_SWEEP_TICKS == 0:
            self._clear_backoff(now)

    def _expire_seen(self, now: float) -> None:
        seen = self._seen
        while seen:
            mid = next(iter(seen))
            if seen[mid] > now:
                break
            del seen[mid]

    # ------------------------------------------------------------ events

    def events(self) -> list[Event]:
        ev = self._events
        if not ev:
            return []
        self._events = []
        return ev

    def seen(self, msg_id: bytes) -> bool:
        return msg_id in self._seen
