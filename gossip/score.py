"""The gossipsub v1.1 peer score (P1-P7), as a sans-IO state machine.

The router tells this object what happened (a peer connected, was grafted, forwarded a
message, the validator rejected a message...) and asks `score(peer, now)`. The rules
are those of the gossipsub v1.1 spec and go-libp2p-pubsub's score.go, so that a peer's
score here matches what a go node would compute for the same history:

- counters decay only at `refresh` ticks and only for connected peers, so a peer cannot
  wash a bad score by disconnecting; a disconnected peer's record is kept for
  `retain_score` seconds if its score was not positive, with its first-delivery credit
  dropped and its P3 deficit turned into the sticky P3b penalty;
- time in mesh (P1) and the activation of P3 are sampled at refresh, not at each
  `score()` call, which keeps `score()` a pure read of recorded state;
- one deliberate difference from go, following the spec and rust-libp2p: P3 stops
  applying when the peer leaves the mesh (pruned or disconnected); only P3b remains;
- every message has a delivery record for `seen_msg_ttl`, so that when validation
  REJECTs a message, every peer that sent it while it was being validated is
  penalised (P4) and later senders too, while IGNORE blames nobody, and so that mesh
  peers that delivered the message during validation (or within the P3 window after
  it) are credited for P3.

Speed: the simulator runs thousands of these in one process. Per-peer and per-topic
state is allocated on first use, `score()` is cached per peer until something that
peer's score depends on changes, and a refresh with nothing to decay is cheap.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from gossip.params import validated
from gossip.score_params import PeerScoreParams, PeerScoreThresholds, TopicScoreParams
from gossip.validation import ValidationResult

__all__ = ["PeerScore", "PeerScoreSnapshot", "TopicScoreSnapshot"]

# Delivery record states (go's deliveryUnknown/Valid/Invalid/Ignored).
_UNKNOWN = 0
_VALID = 1
_INVALID = 2
_IGNORED = 3


class _TopicStats:
    __slots__ = (
        "first_message_deliveries",
        "graft_time",
        "in_mesh",
        "invalid_message_deliveries",
        "mesh_failure_penalty",
        "mesh_message_deliveries",
        "mesh_message_deliveries_active",
        "mesh_time",
    )

    def __init__(self) -> None:
        self.in_mesh = False
        self.graft_time = 0.0
        self.mesh_time = 0.0
        self.first_message_deliveries = 0.0
        self.mesh_message_deliveries = 0.0
        self.mesh_message_deliveries_active = False
        self.mesh_failure_penalty = 0.0
        self.invalid_message_deliveries = 0.0


class _PeerStats:
    __slots__ = ("behaviour_penalty", "connected", "expire", "ips", "topics")

    def __init__(self) -> None:
        self.connected = True
        self.expire = 0.0
        self.topics: dict[str, _TopicStats] | None = None
        self.ips: tuple[str, ...] = ()
        self.behaviour_penalty = 0.0


class _DeliveryRecord:
    __slots__ = ("expire", "peers", "status", "validated")

    def __init__(self, expire: float) -> None:
        self.status = _UNKNOWN
        self.validated = 0.0
        self.expire = expire
        # Senders of copies, each once. A short list: a message has a few copies (one
        # per mesh peer), and a list costs a fraction of a set's memory per message.
        self.peers: list[bytes] | None = None


@dataclass(frozen=True, slots=True)
class TopicScoreSnapshot:
    """One topic's raw counters for a peer (before weights), for inspection and reports."""

    in_mesh: bool
    time_in_mesh: float
    first_message_deliveries: float
    mesh_message_deliveries: float
    mesh_message_deliveries_active: bool
    mesh_failure_penalty: float
    invalid_message_deliveries: float


@dataclass(frozen=True, slots=True)
class PeerScoreSnapshot:
    """A peer's score with its components, as go's ExtendedPeerScoreInspectFn gives."""

    score: float
    connected: bool
    topics: dict[str, TopicScoreSnapshot]
    app_specific_score: float
    ip_colocation_factor: float
    behaviour_penalty: float


def _ip_keys(ip: str) -> tuple[str, ...]:
    """The colocation keys of an address: the address itself, plus its /64 for IPv6
    (one host commonly owns a whole /64). Loopback is not tracked, as in go: local
    test networks all share 127.0.0.1 and must not be penalised for it."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        raise ValueError(f"set_ip: {ip!r} is not an IP address") from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr.is_loopback:
        return ()
    if isinstance(addr, ipaddress.IPv4Address):
        return (str(addr),)
    net = ipaddress.IPv6Network((int(addr) >> 64 << 64, 64))
    return (str(addr), str(net))


class PeerScore:
    """Peer scores of one router. All times are `now` floats passed in by the caller.

    Hooks are no-ops for peers that were never added (as in go): the router adds a peer
    when it connects and removes it on disconnect.
    """

    def __init__(
        self,
        params: PeerScoreParams,
        thresholds: PeerScoreThresholds | None = None,
    ) -> None:
        validated(params)
        if thresholds is not None:
            validated(thresholds)
        self.params = params
        self.thresholds = thresholds if thresholds is not None else PeerScoreThresholds()
        self._topics = params.topics
        self._stats: dict[bytes, _PeerStats] = {}
        self._peer_ips: dict[str, set[bytes]] = {}
        self._app_scores: dict[bytes, float] = {}
        self._deliveries: dict[bytes, _DeliveryRecord] = {}
        self._delivery_queue: deque[bytes] | None = None  # allocated on first record
        self._cache: dict[bytes, float] = {}
        self._whitelist = tuple(
            ipaddress.ip_network(c, strict=False) for c in params.ip_colocation_factor_whitelist
        )
        self._whitelisted: dict[str, bool] = {}
        self._last_decay: float | None = None

    # ------------------------------------------------------------------ peers

    def add_peer(self, peer: bytes, now: float, ip: str | None = None) -> None:
        """A peer connected (`ip`: its remote address, as for `set_ip`). A retained
        record (recent disconnect) is revived as is: reconnecting washes nothing."""
        st = self._stats.get(peer)
        if st is None:
            st = _PeerStats()
            self._stats[peer] = st
        else:
            st.connected = True
        self._cache.pop(peer, None)
        if ip is not None:
            self.set_ip(peer, ip)

    def remove_peer(self, peer: bytes, now: float) -> None:
        """A peer disconnected. Positive scores are forgotten; others are retained for
        `retain_score`, minus first-delivery credit, with P3 deficits made sticky (P3b)."""
        st = self._stats.get(peer)
        if st is None or not st.connected:
            return
        if self.score(peer, now) > 0:
            self._drop(peer, st)
            return
        if st.topics:
            for topic, ts in st.topics.items():
                ts.first_message_deliveries = 0.0
                _leave_mesh(ts, self._topics[topic])
        st.connected = False
        st.expire = now + self.params.retain_score
        self._cache.pop(peer, None)

    def set_ip(self, peer: bytes, ip: str | None) -> None:
        """The peer's current remote IP (None when unknown). Feeds P6."""
        st = self._stats.get(peer)
        if st is None:
            return
        new = _ip_keys(ip) if ip is not None else ()
        old = st.ips
        if new == old:
            return
        for key in old:
            if key not in new:
                self._untrack_ip(peer, key)
        for key in new:
            if key not in old:
                group = self._peer_ips.get(key)
                if group is None:
                    group = self._peer_ips[key] = set()
                group.add(peer)
                self._invalidate(group)
        st.ips = new
        self._cache.pop(peer, None)

    def set_app_score(self, peer: bytes, value: float) -> None:
        """P5: the application's opinion of the peer (reputation). Kept for peers that
        are not connected too, so a score set ahead of a connection applies on it."""
        if not math.isfinite(value):
            raise ValueError(f"set_app_score: value must be finite, got {value!r}")
        if value == 0:
            self._app_scores.pop(peer, None)
        else:
            self._app_scores[peer] = float(value)
        self._cache.pop(peer, None)

    def add_penalty(self, peer: bytes, count: int = 1) -> None:
        """P7: a behaviour penalty (broken IWANT promise, GRAFT during backoff, ...)."""
        st = self._stats.get(peer)
        if st is None:
            return
        st.behaviour_penalty += count
        self._cache.pop(peer, None)

    def set_topic_params(self, topic: str, topic_params: TopicScoreParams) -> None:
        """Score `topic` with new parameters from now on (go's SetTopicScoreParams).

        Counters already above a lowered cap are cut to it, so a peer does not keep
        credit the new parameters would never have given."""
        topic_params.validate(prefix=f"topics[{topic!r}].")
        old = self._topics.get(topic)
        topics = dict(self._topics)
        topics[topic] = topic_params
        self.params = dataclasses.replace(self.params, topics=topics)
        self._topics = self.params.topics
        if old is not None:
            fm_cap = topic_params.first_message_deliveries_cap
            mm_cap = topic_params.mesh_message_deliveries_cap
            if fm_cap < old.first_message_deliveries_cap or (
                mm_cap < old.mesh_message_deliveries_cap
            ):
                for st in self._stats.values():
                    ts = st.topics.get(topic) if st.topics else None
                    if ts is None:
                        continue
                    if ts.first_message_deliveries > fm_cap:
                        ts.first_message_deliveries = fm_cap
                    if ts.mesh_message_deliveries > mm_cap:
                        ts.mesh_message_deliveries = mm_cap
        self._cache.clear()

    # ------------------------------------------------------------------ mesh

    def graft(self, peer: bytes, topic: str, now: float) -> None:
        ts = self._topic_stats(peer, topic)
        if ts is None:
            return
        ts.in_mesh = True
        ts.graft_time = now
        ts.mesh_time = 0.0
        ts.mesh_message_deliveries_active = False
        self._cache.pop(peer, None)

    def prune(self, peer: bytes, topic: str, now: float) -> None:
        """Leaving the mesh with an active P3 deficit makes it sticky (P3b)."""
        ts = self._topic_stats(peer, topic)
        if ts is None:
            return
        _leave_mesh(ts, self._topics[topic])
        self._cache.pop(peer, None)

    # ------------------------------------------------------------------ messages

    def validate_message(self, msg_id: bytes, peer: bytes, topic: str, now: float) -> None:
        """A message was seen for the first time and enters validation."""
        self._record(msg_id, now)

    def deliver_message(self, msg_id: bytes, peer: bytes, topic: str, now: float) -> None:
        """The first copy (from `peer`) was validated ACCEPT: credit `peer` with a first
        delivery, and mesh peers that sent it while it was being validated with a
        mesh delivery.

        For a message we publish ourselves, call it with our own peer id (which has no
        record): the message is then known valid, and mesh peers relaying it back
        within the P3 window count as near-first deliveries, as in go."""
        self._mark_first_delivery(peer, topic)
        rec = self._record(msg_id, now)
        if rec.status != _UNKNOWN:
            return
        rec.status = _VALID
        rec.validated = now
        if rec.peers:
            for p in rec.peers:
                if p != peer:
                    self._mark_duplicate(p, topic, None, now)

    def reject_message(
        self,
        msg_id: bytes,
        peer: bytes,
        topic: str,
        result: ValidationResult,
        now: float,
    ) -> None:
        """Validation did not accept the message first received from `peer`.

        REJECT penalises `peer` and every peer that sent the same message while it was
        being validated (P4), and any later sender too. IGNORE blames nobody."""
        if result is ValidationResult.ACCEPT:
            raise ValueError("reject_message: ACCEPT is reported with deliver_message")
        rec = self._record(msg_id, now)
        if rec.status != _UNKNOWN:
            return
        if result is ValidationResult.IGNORE:
            rec.status = _IGNORED
            rec.peers = None
            return
        rec.status = _INVALID
        self._mark_invalid(peer, topic)
        if rec.peers:
            for p in rec.peers:
                self._mark_invalid(p, topic)
        rec.peers = None

    def reject_unvalidated(self, peer: bytes, topic: str, now: float) -> None:
        """A message from `peer` failed before validation proper (bad or missing
        signature, self-origin, malformed): penalise the sender only, without a
        delivery record, because its id cannot be trusted to name the real message."""
        self._mark_invalid(peer, topic)

    def duplicate_message(self, msg_id: bytes, peer: bytes, topic: str, now: float) -> None:
        """Another copy of a message already seen arrived from `peer`."""
        rec = self._deliveries.get(msg_id)
        if rec is None:
            rec = self._record(msg_id, now)
        status = rec.status
        if status <= _VALID:  # unknown or valid: remember the sender, once
            peers = rec.peers
            if peers is None:
                rec.peers = [peer]
            elif peer in peers:
                return
            else:
                peers.append(peer)
            if status == _VALID:
                self._mark_duplicate(peer, topic, rec.validated, now)
        elif status == _INVALID:
            self._mark_invalid(peer, topic)
        # _IGNORED: nothing

    # ------------------------------------------------------------------ score

    def score(self, peer: bytes, now: float) -> float:
        """The peer's score (0 for unknown peers). Cached until its inputs change;
        time-based parts advance at `refresh`."""
        cached = self._cache.get(peer)
        if cached is not None:
            return cached
        st = self._stats.get(peer)
        if st is None:
            return 0.0
        value = self._compute(peer, st)
        self._cache[peer] = value
        return value

    def refresh(self, now: float) -> None:
        """Decay counters by the whole decay intervals elapsed since the last decay,
        sample time in mesh, activate P3, expire retained peers and old delivery records.

        Call it from the heartbeat; calling more often than `decay_interval` is fine
        (decay catches up by whole intervals, so the rate does not depend on the caller).
        """
        params = self.params
        ticks = 0
        if self._last_decay is None:
            self._last_decay = now
        else:
            ticks = math.floor((now - self._last_decay) / params.decay_interval)
            if ticks > 0:
                self._last_decay += ticks * params.decay_interval
        dtz = params.decay_to_zero
        topics = self._topics
        expired: list[bytes] = []
        for peer, st in self._stats.items():
            if not st.connected:
                if now > st.expire:
                    expired.append(peer)
                continue
            if st.topics:
                for topic, ts in st.topics.items():
                    tp = topics[topic]
                    if ticks:
                        if ts.first_message_deliveries:
                            ts.first_message_deliveries = _decayed(
                                ts.first_message_deliveries,
                                tp.first_message_deliveries_decay,
                                ticks,
                                dtz,
                            )
                        if ts.mesh_message_deliveries:
                            ts.mesh_message_deliveries = _decayed(
                                ts.mesh_message_deliveries,
                                tp.mesh_message_deliveries_decay,
                                ticks,
                                dtz,
                            )
                        if ts.mesh_failure_penalty:
                            ts.mesh_failure_penalty = _decayed(
                                ts.mesh_failure_penalty, tp.mesh_failure_penalty_decay, ticks, dtz
                            )
                        if ts.invalid_message_deliveries:
                            ts.invalid_message_deliveries = _decayed(
                                ts.invalid_message_deliveries,
                                tp.invalid_message_deliveries_decay,
                                ticks,
                                dtz,
                            )
                    if ts.in_mesh:
                        ts.mesh_time = now - ts.graft_time
                        if ts.mesh_time > tp.mesh_message_deliveries_activation:
                            ts.mesh_message_deliveries_active = True
            if ticks and st.behaviour_penalty:
                st.behaviour_penalty = _decayed(
                    st.behaviour_penalty, params.behaviour_penalty_decay, ticks, dtz
                )
        for peer in expired:
            self._drop(peer, self._stats[peer])
        self._cache.clear()
        self._gc_deliveries(now)

    # ------------------------------------------------------------------ inspection

    def snapshot(self, peer: bytes, now: float) -> PeerScoreSnapshot | None:
        """The score and its raw components, or None for an unknown peer."""
        st = self._stats.get(peer)
        if st is None:
            return None
        topics = {
            t: TopicScoreSnapshot(
                in_mesh=ts.in_mesh,
                time_in_mesh=ts.mesh_time if ts.in_mesh else 0.0,
                first_message_deliveries=ts.first_message_deliveries,
                mesh_message_deliveries=ts.mesh_message_deliveries,
                mesh_message_deliveries_active=ts.mesh_message_deliveries_active,
                mesh_failure_penalty=ts.mesh_failure_penalty,
                invalid_message_deliveries=ts.invalid_message_deliveries,
            )
            for t, ts in (st.topics or {}).items()
        }
        return PeerScoreSnapshot(
            score=self.score(peer, now),
            connected=st.connected,
            topics=topics,
            app_specific_score=self._app_scores.get(peer, 0.0),
            ip_colocation_factor=self._ip_colocation_factor(st),
            behaviour_penalty=st.behaviour_penalty,
        )

    def peers(self) -> list[bytes]:
        """Peers with a record (connected, or disconnected and retained)."""
        return list(self._stats)

    def is_connected(self, peer: bytes) -> bool:
        st = self._stats.get(peer)
        return st is not None and st.connected

    def delivery_records(self) -> int:
        """How many message delivery records are held (memory accounting)."""
        return len(self._deliveries)

    # ------------------------------------------------------------------ internals

    def _compute(self, peer: bytes, st: _PeerStats) -> float:
        params = self.params
        score = 0.0
        if st.topics:
            topics = self._topics
            for topic, ts in st.topics.items():
                tp = topics[topic]
                ts_score = 0.0
                if ts.in_mesh:
                    p1: float = float(math.floor(ts.mesh_time / tp.time_in_mesh_quantum))
                    if p1 > tp.time_in_mesh_cap:
                        p1 = tp.time_in_mesh_cap
                    ts_score += p1 * tp.time_in_mesh_weight
                ts_score += ts.first_message_deliveries * tp.first_message_deliveries_weight
                if ts.mesh_message_deliveries_active:
                    threshold = tp.mesh_message_deliveries_threshold
                    if ts.mesh_message_deliveries < threshold:
                        deficit = threshold - ts.mesh_message_deliveries
                        ts_score += deficit * deficit * tp.mesh_message_deliveries_weight
                ts_score += ts.mesh_failure_penalty * tp.mesh_failure_penalty_weight
                inv = ts.invalid_message_deliveries
                ts_score += inv * inv * tp.invalid_message_deliveries_weight
                score += ts_score * tp.topic_weight
        cap = params.topic_score_cap
        if cap > 0 and score > cap:
            score = cap
        app = self._app_scores.get(peer)
        if app is not None:
            score += app * params.app_specific_weight
        if st.ips and params.ip_colocation_factor_weight != 0:
            score += self._ip_colocation_factor(st) * params.ip_colocation_factor_weight
        bp = st.behaviour_penalty
        if bp > params.behaviour_penalty_threshold:
            excess = bp - params.behaviour_penalty_threshold
            score += excess * excess * params.behaviour_penalty_weight
        return score

    def _ip_colocation_factor(self, st: _PeerStats) -> float:
        threshold = self.params.ip_colocation_factor_threshold
        result = 0.0
        for key in st.ips:
            if self._whitelist and self._is_whitelisted(key):
                continue
            n = len(self._peer_ips.get(key, ()))
            if n > threshold:
                surplus = n - threshold
                result += surplus * surplus
        return result

    def _is_whitelisted(self, key: str) -> bool:
        hit = self._whitelisted.get(key)
        if hit is None:
            if "/" in key:
                net = ipaddress.ip_network(key)
                hit = any(
                    net.version == w.version and net.subnet_of(w)  # type: ignore[arg-type]
                    for w in self._whitelist
                )
            else:
                addr = ipaddress.ip_address(key)
                hit = any(addr in w for w in self._whitelist)
            self._whitelisted[key] = hit
        return hit

    def _untrack_ip(self, peer: bytes, key: str) -> None:
        group = self._peer_ips.get(key)
        if group is None:
            return
        group.discard(peer)
        if group:
            self._invalidate(group)
        else:
            del self._peer_ips[key]

    def _invalidate(self, peers: Iterable[bytes]) -> None:
        cache = self._cache
        if cache:
            for p in peers:
                cache.pop(p, None)

    def _drop(self, peer: bytes, st: _PeerStats) -> None:
        for key in st.ips:
            self._untrack_ip(peer, key)
        del self._stats[peer]
        self._cache.pop(peer, None)

    def _topic_stats(self, peer: bytes, topic: str) -> _TopicStats | None:
        st = self._stats.get(peer)
        if st is None or topic not in self._topics:
            return None
        topics = st.topics
        if topics is None:
            topics = st.topics = {}
        ts = topics.get(topic)
        if ts is None:
            ts = topics[topic] = _TopicStats()
        return ts

    def _record(self, msg_id: bytes, now: float) -> _DeliveryRecord:
        rec = self._deliveries.get(msg_id)
        if rec is None:
            rec = self._deliveries[msg_id] = _DeliveryRecord(now + self.params.seen_msg_ttl)
            q = self._delivery_queue
            if q is None:
                q = self._delivery_queue = deque()
            q.append(msg_id)
        return rec

    def _gc_deliveries(self, now: float) -> None:
        # Records are created with a constant TTL, so creation order is expiry order:
        # pop from the front of the queue until one is still alive. (A deque, not the
        # dict's own order: iterating a dict from the front after many deletions scans
        # the dead slots every time, which turns this loop quadratic.)
        q = self._delivery_queue
        if q is None:
            return
        d = self._deliveries
        while q:
            msg_id = q[0]
            if d[msg_id].expire >= now:
                break
            q.popleft()
            del d[msg_id]

    def _mark_invalid(self, peer: bytes, topic: str) -> None:
        ts = self._topic_stats(peer, topic)
        if ts is None:
            return
        ts.invalid_message_deliveries += 1
        self._cache.pop(peer, None)

    def _mark_first_delivery(self, peer: bytes, topic: str) -> None:
        ts = self._topic_stats(peer, topic)
        if ts is None:
            return
        tp = self._topics[topic]
        v = ts.first_message_deliveries + 1
        ts.first_message_deliveries = (
            v if v <= tp.first_message_deliveries_cap else tp.first_message_deliveries_cap
        )
        if ts.in_mesh:
            v = ts.mesh_message_deliveries + 1
            ts.mesh_message_deliveries = (
                v if v <= tp.mesh_message_deliveries_cap else tp.mesh_message_deliveries_cap
            )
        self._cache.pop(peer, None)

    def _mark_duplicate(self, peer: bytes, topic: str, validated: float | None, now: float) -> None:
        """A mesh delivery for P3: `validated` None means it arrived during validation;
        otherwise it counts only within the P3 window after validation."""
        ts = self._topic_stats(peer, topic)
        if ts is None or not ts.in_mesh:
            return
        tp = self._topics[topic]
        if validated is not None and now - validated > tp.mesh_message_deliveries_window:
            return
        v = ts.mesh_message_deliveries + 1
        ts.mesh_message_deliveries = (
            v if v <= tp.mesh_message_deliveries_cap else tp.mesh_message_deliveries_cap
        )
        self._cache.pop(peer, None)


def _decayed(value: float, decay: float, ticks: int, decay_to_zero: float) -> float:
    """`value` after `ticks` decay intervals; under `decay_to_zero` it is 0."""
    v = value * (decay if ticks == 1 else decay**ticks)
    return v if v >= decay_to_zero else 0.0


def _leave_mesh(ts: _TopicStats, tp: TopicScoreParams) -> None:
    """A peer leaves a topic's mesh (pruned or disconnected). An active P3 deficit
    becomes the sticky P3b penalty, and P3 stops applying: it is a mesh peer's
    penalty. (go leaves the flag set, so P3 keeps growing on a pruned peer until
    it is grafted again; the spec and rust-libp2p clear it, and so do we.) P3 is
    active only in the mesh, so no `in_mesh` test is needed."""
    threshold = tp.mesh_message_deliveries_threshold
    if ts.mesh_message_deliveries_active and ts.mesh_message_deliveries < threshold:
        deficit = threshold - ts.mesh_message_deliveries
        ts.mesh_failure_penalty += deficit * deficit
    ts.in_mesh = False
    ts.mesh_message_deliveries_active = False
