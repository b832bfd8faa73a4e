"""Mesh, fanout and backoff transitions of the gossip router.

Every change to a mesh, a fanout or a backoff happens in this module, and
nowhere else: a peer enters a mesh when we join a topic (`_join_mesh`), when
it GRAFTs us and we accept (`_handle_graft`), or when a heartbeat fills,
rebalances or opportunistically grows the mesh (`_maintain_mesh`); it leaves
when we leave the topic (`_leave_mesh`), when it leaves the topic or
disconnects (`_leave_topic`), when it PRUNEs us (`_handle_prune`), or when a
heartbeat drops it for its score or cuts an oversubscribed mesh. Every exit
we cause sends a PRUNE and starts a backoff; every entry we cause sends a
GRAFT. The score observer hears every GRAFT and PRUNE from here, so P1-P3b
follow the mesh exactly. Reading the rules of the mesh means reading this file
(as h11 keeps its connection states in one module).

A base class of GossipRouter: its slots are part of the router (10^5 routers
share a simulator process, so no extra object per router). The order in which the rng
is drawn here is part of the simulator's seed-stable results.
"""

from __future__ import annotations

from collections.abc import Callable

from gossip.events import Event, PeerExchange, ScoreObserver
from gossip.outbound import OutboundQueues
from gossip.peers import NO_PEERS, Peer, PeerSet
from gossip.rng import RandomSource, sample
from gossip.wire import PeerInfo, Prune

PROTOCOL_V12 = "/meshsub/1.2.0"
PROTOCOL_V11 = "/meshsub/1.1.0"
PROTOCOL_V10 = "/meshsub/1.0.0"
PROTOCOLS = (PROTOCOL_V12, PROTOCOL_V11, PROTOCOL_V10)

PeerRecordSource = Callable[[bytes], bytes | None]

# Expired backoffs are swept every this many heartbeats: often enough that the
# map stays small, rarely enough that the sweep costs nothing per heartbeat.
BACKOFF_SWEEP_TICKS = 15
# A backoff is forgotten only this many heartbeats past its expiry, so that a
# GRAFT from a peer whose clock runs a little behind still counts as in backoff.
BACKOFF_FORGET_HEARTBEATS = 2


class MeshTransitions(OutboundQueues):
    __slots__ = ("_backoff", "_fanout", "_fanout_last", "_mesh", "_topic_peers")

    _topic_peers: dict[str, PeerSet]  # who subscribes to what (the mesh's candidates)
    _mesh: dict[str, PeerSet]
    # topics we publish to without joining; both maps exist together, and only
    # while some topic is in fanout (rare for a subscribed node)
    _fanout: dict[str, PeerSet] | None
    _fanout_last: dict[str, float] | None
    _backoff: dict[str, dict[bytes, float]] | None  # topic -> peer -> expiry
    # the router's
    local_peer: bytes
    rng: RandomSource
    peer_record: PeerRecordSource | None
    _score: ScoreObserver | None
    _publish_th: float
    _accept_px_th: float
    _og_th: float
    _events: list[Event]

    def score_of(self, peer: bytes, now: float) -> float:
        sc = self._score
        return sc.score(peer, now) if sc is not None else 0.0

    # ------------------------------------------------------------ our joins and leaves

    def _join_mesh(self, topic: str, now: float) -> None:
        """We joined `topic`: its fanout peers (if any) and then others not in backoff,
        with score >= 0, up to D, are grafted."""
        mesh: PeerSet = {}
        fan = None
        if self._fanout is not None and self._fanout_last is not None:
            fan = self._fanout.pop(topic, None)
            self._fanout_last.pop(topic, None)
            if not self._fanout_last:
                self._fanout = self._fanout_last = None
        D = self.params.D
        if fan:
            for p in fan:
                if len(mesh) >= D:
                    break
                if self.score_of(p, now) >= 0:
                    mesh[p] = None
        if len(mesh) < D:
            more = self._select_peers(
                topic,
                D - len(mesh),
                lambda p: (
                    p not in mesh
                    and not self._in_backoff(topic, p, now, slack=True)
                    and self.score_of(p, now) >= 0
                ),
            )
            mesh.update(dict.fromkeys(more))
        self._mesh[topic] = mesh
        for p in mesh:
            self._graft_peer(p, topic, now)

    def _leave_mesh(self, topic: str, now: float) -> None:
        """We left `topic`: its mesh goes, every peer in it pruned with the
        unsubscribe backoff."""
        mesh = self._mesh.pop(topic)
        for p in mesh:
            if self._score is not None:
                self._score.prune(p, topic, now)
            self._queue_prune(p, topic, now, do_px=self.params.do_px, unsubscribe=True)

    def _fanout_targets(self, topic: str, now: float, pth: float) -> list[bytes]:
        """Where our message for a topic we have not joined goes (without flood
        publishing): its fanout, chosen now (D peers at or above the publish
        threshold) if it has none; the topic's last use is noted for fanout_ttl."""
        fanout, last = self._fanout, self._fanout_last
        if fanout is None or last is None:
            fanout, last = self._fanout, self._fanout_last = {}, {}
        fan = fanout.get(topic)
        if not fan:
            fan = dict.fromkeys(
                self._select_peers(topic, self.params.D, lambda p: self.score_of(p, now) >= pth)
            )
            if fan:
                fanout[topic] = fan
        last[topic] = now
        return list(fan)

    # ------------------------------------------------------------ peers' joins and leaves

    def _leave_topic(self, peer: bytes, t: str, now: float) -> None:
        """Take `peer` out of topic `t`'s peers, mesh (a prune, for the score) and fanout,
        as on an unsubscription or a disconnect."""
        tp = self._topic_peers.get(t)
        if tp is not None:
            tp.pop(peer, None)
            if not tp:
                del self._topic_peers[t]
        mesh = self._mesh.get(t)
        if mesh is not None and peer in mesh:
            del mesh[peer]
            if self._score is not None:
                self._score.prune(peer, t, now)
        if self._fanout is not None:
            fan = self._fanout.get(t)
            if fan is not None:
                fan.pop(peer, None)

    def _handle_graft(self, peer: bytes, st: Peer, topics: list[str], now: float) -> None:
        m = self.metrics
        m.graft_received += 1
        sc = self._score
        score = self.score_of(peer, now)
        do_px = self.params.do_px
        prune: list[str] = []
        for topic in topics:
            mesh = self._mesh.get(topic)
            if mesh is None:
                do_px = False  # never leak peers for topics we are not in
                continue
            if peer in mesh:
                continue
            if topic not in st.topics:
                # a mesh member must be a subscriber: refuse, without PX
                do_px = False
                prune.append(topic)
                continue
            expire = self._backoff_expiry(topic, peer)
            if expire is not None and now < expire:
                if sc is not None:
                    sc.add_penalty(peer, 1)
                    flood_cutoff = (
                        expire + self.params.graft_flood_threshold - (self.params.prune_backoff)
                    )
                    if now < flood_cutoff:
                        sc.add_penalty(peer, 1)
                do_px = False
                self._add_backoff(topic, peer, now + self.params.prune_backoff)
                prune.append(topic)
                continue
            if score < 0:
                do_px = False
                self._add_backoff(topic, peer, now + self.params.prune_backoff)
                prune.append(topic)
                continue
            if len(mesh) >= self.params.D_hi and not st.outbound:
                self._add_backoff(topic, peer, now + self.params.prune_backoff)
                prune.append(topic)
                continue
            mesh[peer] = None
            if sc is not None:
                sc.graft(peer, topic, now)
        for topic in prune:
            self._queue_prune(peer, topic, now, do_px=do_px, unsubscribe=False, add_backoff=False)

    def _handle_prune(self, peer: bytes, prunes: list[Prune], now: float) -> None:
        m = self.metrics
        m.prune_received += 1
        score = self.score_of(peer, now)
        for pr in prunes:
            topic = pr.topic
            mesh = self._mesh.get(topic)
            if mesh is None:
                continue
            if peer in mesh:
                del mesh[peer]
                if self._score is not None:
                    self._score.prune(peer, topic, now)
            backoff = pr.backoff
            if backoff:
                secs = min(float(backoff), self.params.max_backoff)
            else:
                secs = self.params.prune_backoff
            self._add_backoff(topic, peer, now + secs)
            if pr.peers:
                if score < self._accept_px_th:
                    m.px_refused += 1
                    continue
                cands = [
                    pi
                    for pi in pr.peers
                    if pi.peer_id
                    and pi.peer_id not in self._peers
                    and pi.peer_id != self.local_peer
                ]
                if len(cands) > self.params.prune_peers:
                    self.rng.shuffle(cands)
                    cands = cands[: self.params.prune_peers]
                if cands:
                    m.px_accepted += 1
                    self._events.append(PeerExchange(topic, peer, cands))

    # ------------------------------------------------------------ heartbeat

    def _maintain_mesh(
        self,
        topic: str,
        mesh: PeerSet,
        now: float,
        score: Callable[[bytes], float],
        og_tick: bool,
        tograft: list[tuple[bytes, str]],
        toprune: list[tuple[bytes, str, bool]],
    ) -> None:
        """One topic's mesh at a heartbeat (spec v1.1, go's heartbeat): drop peers with
        a negative score, fill below D_lo, cut above D_hi, keep D_out outbound, and
        graft opportunistically when the median score is low. Peers leave and enter
        the mesh here; their PRUNEs and GRAFTs are sent by `_send_mesh_changes`,
        after every topic is done."""
        p = self.params
        sc = self._score
        # drop peers with negative score (no PX for them); without scoring every
        # score is 0
        if sc is not None:
            for peer in [x for x in mesh if score(x) < 0]:
                del mesh[peer]
                toprune.append((peer, topic, False))
                sc.prune(peer, topic, now)

        if len(mesh) < p.D_lo:
            need = p.D - len(mesh)
            for peer in self._select_peers(
                topic,
                need,
                lambda x, mesh=mesh, topic=topic: (
                    x not in mesh  # type: ignore[misc]
                    and not self._in_backoff(topic, x, now, slack=True)
                    and score(x) >= 0
                ),
            ):
                mesh[peer] = None
                tograft.append((peer, topic))

        if len(mesh) > p.D_hi:
            keep = self._select_survivors(mesh, score)
            for peer in [x for x in mesh if x not in keep]:
                del mesh[peer]
                toprune.append((peer, topic, True))
                if sc is not None:
                    sc.prune(peer, topic, now)

        if len(mesh) >= p.D_lo:
            peers = self._peers
            outbound = 0
            d_out = p.D_out
            for x in mesh:
                if peers[x].outbound:
                    outbound += 1
                    if outbound >= d_out:
                        break  # enough: the count matters only below D_out
            if outbound < d_out:
                for peer in self._select_peers(
                    topic,
                    p.D_out - outbound,
                    lambda x, mesh=mesh, topic=topic: (
                        x not in mesh  # type: ignore[misc]
                        and self._peers[x].outbound
                        and not self._in_backoff(topic, x, now, slack=True)
                        and score(x) >= 0
                    ),
                ):
                    mesh[peer] = None
                    tograft.append((peer, topic))

        if og_tick and len(mesh) > 1:
            ranked = sorted(score(x) for x in mesh)
            median = ranked[len(ranked) // 2]
            if median < self._og_th:
                for peer in self._select_peers(
                    topic,
                    p.opportunistic_graft_peers,
                    lambda x, mesh=mesh, topic=topic, median=median: (
                        x not in mesh  # type: ignore[misc]
                        and not self._in_backoff(topic, x, now, slack=True)
                        and score(x) > median
                    ),
                ):
                    mesh[peer] = None
                    tograft.append((peer, topic))

    def _expire_fanout(self, now: float) -> dict[str, PeerSet] | None:
        """Forget fanout topics unused for fanout_ttl; the fanout left, if any."""
        p = self.params
        fanout, fanout_last = self._fanout, self._fanout_last
        if fanout is not None and fanout_last is not None:
            for topic in [t for t, last in fanout_last.items() if last + p.fanout_ttl < now]:
                fanout.pop(topic, None)
                del fanout_last[topic]
            if not fanout_last:
                self._fanout = self._fanout_last = fanout = None
        return fanout

    def _maintain_fanout(self, topic: str, fan: PeerSet, score: Callable[[bytes], float]) -> None:
        """Drop fanout peers that left the topic or fell under the publish threshold,
        and refill to D."""
        p = self.params
        tp = self._topic_peers.get(topic, NO_PEERS)
        for peer in [x for x in fan if x not in tp or score(x) < self._publish_th]:
            del fan[peer]
        if len(fan) < p.D:
            fan.update(
                dict.fromkeys(
                    self._select_peers(
                        topic,
                        p.D - len(fan),
                        lambda x, fan=fan: (
                            x not in fan  # type: ignore[misc]
                            and score(x) >= self._publish_th
                        ),
                    )
                )
            )

    def _send_mesh_changes(
        self,
        tograft: list[tuple[bytes, str]],
        toprune: list[tuple[bytes, str, bool]],
        now: float,
    ) -> None:
        for peer, topic in tograft:
            self._graft_peer(peer, topic, now)
        for peer, topic, px in toprune:
            self._queue_prune(peer, topic, now, do_px=px and self.params.do_px, unsubscribe=False)

    def _select_survivors(self, mesh: PeerSet, score: Callable[[bytes], float]) -> set[bytes]:
        """Who stays when the mesh is over D_hi: D_score best by score, the rest random,
        at least D_out outbound (spec v1.1, go's heartbeat)."""
        p = self.params
        plst = list(mesh)
        self.rng.shuffle(plst)
        plst.sort(key=score, reverse=True)
        best = plst[: p.D_score]
        rest = plst[p.D_score :]
        self.rng.shuffle(rest)
        keep = best + rest[: p.D - len(best)]
        dropped = rest[p.D - len(best) :]
        out_kept = sum(1 for x in keep if self._peers[x].outbound)
        if out_kept < p.D_out:
            extra = [x for x in dropped if self._peers[x].outbound][: p.D_out - out_kept]
            # replace inbound peers from the random part, last first
            for newp in extra:
                for i in range(len(keep) - 1, -1, -1):
                    if not self._peers[keep[i]].outbound:
                        keep[i] = newp
                        break
        return set(keep)

    # ------------------------------------------------------------ backoff

    def _backoff_expiry(self, topic: str, peer: bytes) -> float | None:
        b = self._backoff
        if b is None:
            return None
        per = b.get(topic)
        return per.get(peer) if per is not None else None

    def _in_backoff(self, topic: str, peer: bytes, now: float, slack: bool = False) -> bool:
        b = self._backoff
        if b is None:  # no backoff at all: the common case, without a call
            return False
        per = b.get(topic)
        exp = per.get(peer) if per is not None else None
        if exp is None:
            return False
        # when we are the ones grafting, wait a heartbeat past the expiry so that
        # clock skew never makes our GRAFT land inside the remote's backoff
        return now < exp + (self.params.heartbeat_interval if slack else 0.0)

    def _add_backoff(self, topic: str, peer: bytes, expire: float) -> None:
        b = self._backoff
        if b is None:
            b = self._backoff = {}
        per = b.get(topic)
        if per is None:
            per = b[topic] = {}
        old = per.get(peer)
        if old is None or old < expire:
            per[peer] = expire

    def _clear_backoff(self, now: float) -> None:
        b = self._backoff
        if b is None:
            return
        slack = BACKOFF_FORGET_HEARTBEATS * self.params.heartbeat_interval
        for topic in list(b):
            per = b[topic]
            for peer in [x for x, exp in per.items() if exp + slack < now]:
                del per[peer]
            if not per:
                del b[topic]
        if not b:
            self._backoff = None

    # ------------------------------------------------------------ choosing, grafting, pruning

    def _select_peers(self, topic: str, count: int, ok: Callable[[bytes], bool]) -> list[bytes]:
        if count <= 0:
            return []
        tp = self._topic_peers.get(topic)
        if not tp:
            return []
        cands = [x for x in tp if ok(x)]
        if len(cands) > count:
            return sample(self.rng, cands, count)
        return cands

    def _graft_peer(self, peer: bytes, topic: str, now: float) -> None:
        if self._score is not None:
            self._score.graft(peer, topic, now)
        self._ctl(peer).graft.append(topic)
        self.metrics.graft_sent += 1

    def _queue_prune(
        self,
        peer: bytes,
        topic: str,
        now: float,
        *,
        do_px: bool,
        unsubscribe: bool,
        add_backoff: bool = True,
    ) -> None:
        st = self._peers.get(peer)
        if st is None:
            return
        backoff = self.params.unsubscribe_backoff if unsubscribe else self.params.prune_backoff
        if add_backoff:
            self._add_backoff(topic, peer, now + backoff)
        self.metrics.prune_sent += 1
        if st.protocol == PROTOCOL_V10:
            self._ctl(peer).prune.append(Prune(topic))
            return
        px: list[PeerInfo] = []
        if do_px:
            cands = self._select_peers(
                topic,
                self.params.prune_peers,
                lambda x: x != peer and self.score_of(x, now) >= 0,
            )
            rec = self.peer_record
            px = [PeerInfo(x, rec(x) if rec is not None else None) for x in cands]
            self.metrics.px_offered += len(px)
        self._ctl(peer).prune.append(Prune(topic, px, int(backoff)))
