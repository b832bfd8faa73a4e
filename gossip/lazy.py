"""Lazy gossip of the router: IHAVE, IWANT, IDONTWANT and IWANT promises.

What we advertise (`_emit_gossip`: ids of the newest mcache windows to D_lazy or
gossip_factor of the non-mesh peers at or above the gossip threshold), what we
ask for (`_handle_ihave`: ids we have not seen, at most max_ihave_length per peer
per heartbeat and max_ihave_messages IHAVEs, one promise per IWANT), what we
serve (`_handle_iwant`: from the mcache, gossip_retransmission times per peer
and message at most), which broken promises cost a behaviour penalty, and the
IDONTWANTs of v1.2 both ways. The per-heartbeat budgets are reset by
`_new_gossip_budgets`; everything here is bounded per peer.

A base class of GossipRouter: its slots are part of the router (10^5 routers
share a simulator process, so no extra object per router). The order in which
the rng is drawn here is part of the simulator's seed-stable results.
"""

from __future__ import annotations

from collections.abc import Callable

from gossip.mcache import MessageCache
from gossip.mesh import PROTOCOL_V12, MeshTransitions
from gossip.peers import PeerSet
from gossip.rng import sample


class LazyGossip(MeshTransitions):
    __slots__ = ("_dontwant", "_iasked", "_peerdontwant", "_peerhave", "_promises")

    # msg id -> peer -> deadline: a peer that announced a message must deliver it
    _promises: dict[bytes, dict[bytes, float]] | None
    # per heartbeat, per peer: IHAVEs received, ids asked for, IDONTWANTs received
    _peerhave: dict[bytes, int] | None
    _iasked: dict[bytes, int] | None
    _peerdontwant: dict[bytes, int] | None
    # per peer: ids it does not want -> the heartbeat tick it expires at
    _dontwant: dict[bytes, dict[bytes, int]] | None
    # the router's
    _mcache: MessageCache
    _seen: dict[bytes, float]
    _gossip_th: float
    _tick: int

    def _new_gossip_budgets(self) -> None:
        self._peerhave = None
        self._iasked = None
        self._peerdontwant = None

    def _expire_dontwant(self) -> None:
        dontwant = self._dontwant
        if dontwant is not None:
            tick = self._tick
            for peer in list(dontwant):
                dw = dontwant[peer]
                for mid in [k for k, exp in dw.items() if exp <= tick]:
                    del dw[mid]
                if not dw:
                    del dontwant[peer]
            if not dontwant:
                self._dontwant = None

    def _emit_gossip(self, topic: str, exclude: PeerSet, score: Callable[[bytes], float]) -> None:
        ids = self._mcache.gossip_ids(topic)
        if not ids:
            return
        tp = self._topic_peers.get(topic)
        if not tp:
            return
        gth = self._gossip_th
        if self._score is None:  # every score is 0
            cands = [x for x in tp if x not in exclude] if gth <= 0.0 else []
        else:
            cands = [x for x in tp if x not in exclude and score(x) >= gth]
        if not cands:
            return
        target = max(self.params.D_lazy, int(self.params.gossip_factor * len(cands)))
        if target < len(cands):
            cands = sample(self.rng, cands, target)
        limit = self.params.max_ihave_length
        for peer in cands:
            lst = ids
            if len(ids) > limit:
                lst = list(ids)
                self.rng.shuffle(lst)
                lst = lst[:limit]
            self._ctl(peer).ihave.append((topic, lst))
            self.metrics.ihave_sent += 1

    def _apply_broken_promises(self, now: float) -> None:
        pr = self._promises
        if not pr:
            return
        broken: dict[bytes, int] = {}
        for mid in list(pr):
            per = pr[mid]
            for peer in [x for x, exp in per.items() if exp < now]:
                del per[peer]
                broken[peer] = broken.get(peer, 0) + 1
            if not per:
                del pr[mid]
        if not pr:
            self._promises = None
        for peer, n in broken.items():
            self.metrics.broken_promises += n
            if self._score is not None:
                self._score.add_penalty(peer, n)

    def _send_idontwant(self, source: bytes, big: dict[str, list[bytes]]) -> None:
        for topic, ids in big.items():
            for p in self._mesh.get(topic, ()):
                if p == source:
                    continue
                st = self._peers[p]
                if st.protocol != PROTOCOL_V12:
                    continue
                self._ctl(p).idontwant.extend(ids)
                self.metrics.idontwant_sent += 1

    def _handle_ihave(self, peer: bytes, ihave: list[tuple[str, list[bytes]]], now: float) -> None:
        m = self.metrics
        m.ihave_received += 1
        if self.score_of(peer, now) < self._gossip_th:
            m.ihave_ignored += 1
            return
        ph = self._peerhave
        if ph is None:
            ph = self._peerhave = {}
        n = ph.get(peer, 0) + 1
        ph[peer] = n
        limit = self.params.max_ihave_length
        asked = self._iasked.get(peer, 0) if self._iasked is not None else 0
        if n > self.params.max_ihave_messages or asked >= limit:
            m.ihave_ignored += 1
            return
        want: dict[bytes, None] = {}
        seen = self._seen
        for topic, ids in ihave:
            if topic not in self._mesh:
                continue
            for i, mid in enumerate(ids):
                if i >= limit:
                    break
                if mid not in seen:
                    want[mid] = None
        if not want:
            return
        lst = list(want)
        ask = min(len(lst), limit - asked)
        self.rng.shuffle(lst)
        lst = lst[:ask]
        if self._iasked is None:
            self._iasked = {}
        self._iasked[peer] = asked + ask
        # one promise per IWANT: the peer must deliver a random one of them in time
        pr = self._promises
        if pr is None:
            pr = self._promises = {}
        mid = lst[int(self.rng.random() * len(lst)) % len(lst)]
        per = pr.setdefault(mid, {})
        if peer not in per:
            per[peer] = now + self.params.iwant_followup_time
        self._ctl(peer).iwant.extend(lst)
        m.iwant_sent += 1

    def _handle_iwant(self, peer: bytes, ids: list[bytes], now: float) -> None:
        m = self.metrics
        m.iwant_received += 1
        if self.score_of(peer, now) < self._gossip_th:
            m.iwant_refused += 1
            return
        dw = self._dontwant.get(peer) if self._dontwant is not None else None
        limit = self.params.gossip_retransmission
        sent: set[bytes] = set()
        for mid in ids:
            if mid in sent or (dw is not None and mid in dw):
                continue
            msg, count = self._mcache.get_for_peer(mid, peer)
            if msg is None:
                continue
            if count > limit:
                m.iwant_refused += 1
                continue
            sent.add(mid)
            m.iwant_served += 1
            self._queue_msg(peer, mid, msg, own=False)

    def _handle_idontwant(self, peer: bytes, ids: list[bytes]) -> None:
        self.metrics.idontwant_received += 1
        pdw = self._peerdontwant
        if pdw is None:
            pdw = self._peerdontwant = {}
        n = pdw.get(peer, 0)
        if n >= self.params.max_idontwant_messages:
            return
        pdw[peer] = n + 1
        dontwant = self._dontwant
        if dontwant is None:
            dontwant = self._dontwant = {}
        dw = dontwant.get(peer)
        if dw is None:
            dw = dontwant[peer] = {}
        expires = self._tick + self.params.idontwant_ttl_heartbeats
        st = self._peers.get(peer)
        queued = st.q_msgs if st is not None else None
        for i, mid in enumerate(ids):
            if i >= self.params.max_idontwant_length:
                break
            dw[mid] = expires
            if queued is not None and mid in queued:
                assert st is not None
                self._unqueue_msg(st, mid)
                queued = st.q_msgs
