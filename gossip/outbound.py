"""The router's outbound side: what is queued for each peer, and its draining.

Each peer has at most one pending list of subscriptions, one of messages and
one control message; `drain*` hands what is queued for a peer out at once, as
few frames as `max_rpc_size` allows (wire.encode_frames), so a burst to one
peer costs one write. `drain_peer` (the driver's, one call per stream write)
takes at most `max_write_messages` messages and about `max_write_bytes` of
them, oldest first, and leaves the rest queued for the next write. Forwarded
messages are bounded per peer (`max_queued_messages`; overflow is counted and
later costs the peer a behaviour penalty); our own publishes are never dropped.

A base class of GossipRouter: its slots are part of the router (10^5 routers
share a simulator process, so no extra object per router).
"""

from __future__ import annotations

from itertools import islice

from gossip.events import RouterMetrics
from gossip.params import GossipSubParams
from gossip.peers import Peer
from gossip.wire import RPC, Control, Message, SubOpts, encode_frames


class OutboundQueues:
    __slots__ = ("_dirty", "_overflowed", "_peers")

    _peers: dict[bytes, Peer]
    _dirty: dict[bytes, None]  # peers with something queued, in the order they got it
    _overflowed: dict[bytes, None] | None  # peers whose queue overflowed this heartbeat
    # the router's
    params: GossipSubParams
    metrics: RouterMetrics

    def _ctl(self, peer: bytes) -> Control:
        st = self._peers[peer]
        c = st.q_ctl
        if c is None:
            c = st.q_ctl = Control()
            self._dirty[peer] = None
        return c

    def _queue_subs(self, peer: bytes, subs: list[SubOpts]) -> None:
        """Queue `subs`, a fresh list the queue may keep (every caller builds one)."""
        st = self._peers[peer]
        if st.q_subs is None:
            st.q_subs = subs
        else:
            st.q_subs.extend(subs)
        self._dirty[peer] = None

    def _queue_msg(self, peer: bytes, msg_id: bytes, msg: Message, own: bool) -> None:
        st = self._peers[peer]
        q = st.q_msgs
        if q is None:
            st.q_msgs = {msg_id: msg}
            self._dirty[peer] = None
            return
        if not own and len(q) >= self.params.max_queued_messages:
            self.metrics.queue_overflow += 1
            if self._overflowed is None:
                self._overflowed = {}
            self._overflowed[peer] = None
            return
        q[msg_id] = msg

    def _unqueue_msg(self, st: Peer, msg_id: bytes) -> bool:
        """Take `msg_id` back from the peer's queue if it still waits there: the
        peer has the message (it sent us a copy, or said it does not want it), so
        the write would only cost both sides a duplicate. Only a busy node's
        queues hold messages long enough for this to happen; an idle one writes
        at once."""
        q = st.q_msgs
        if q is None or q.pop(msg_id, None) is None:
            return False
        if not q:
            st.q_msgs = None
        self.metrics.msgs_unqueued_held += 1
        return True

    def has_pending(self) -> bool:
        return bool(self._dirty)

    def has_output_for(self, peer: bytes) -> bool:
        return peer in self._dirty

    def pending_peers(self) -> list[bytes]:
        return list(self._dirty)

    def queued_messages(self, peer: bytes) -> int:
        st = self._peers.get(peer)
        return len(st.q_msgs) if st is not None and st.q_msgs else 0

    def _take(self, peer: bytes) -> tuple[list[SubOpts], list[Message], Control | None]:
        st = self._peers.get(peer)
        if st is None:
            return [], [], None
        subs = st.q_subs or []
        q = st.q_msgs
        msgs = list(q.values()) if q else []
        ctl = st.q_ctl
        st.q_subs = None
        st.q_msgs = None
        st.q_ctl = None
        return subs, msgs, ctl

    def drain_peer(self, peer: bytes) -> list[bytes]:
        """What is queued for `peer`, up to one write's worth, as length-prefixed
        frames (usually one): subscriptions and control whole, then messages in
        the order queued until `max_write_messages` or `max_write_bytes` (the
        first message goes whatever its size). What is left stays queued and the
        peer stays pending."""
        if peer not in self._dirty:
            return []
        st = self._peers.get(peer)
        if st is None:
            del self._dirty[peer]
            return []
        q = st.q_msgs
        if q is not None and len(q) > 1:
            msgs = list(q.values())
            cut = self._write_cut(msgs)
            if cut < len(msgs):
                for k in list(islice(q, cut)):
                    del q[k]
                subs, ctl = st.q_subs or [], st.q_ctl
                st.q_subs = None
                st.q_ctl = None
                return self._encode(subs, msgs[:cut], ctl)
        del self._dirty[peer]
        subs, msgs_all, ctl = self._take(peer)
        return self._encode(subs, msgs_all, ctl)

    def _write_cut(self, msgs: list[Message]) -> int:
        """How many of `msgs` (from the front) one write takes: at least one."""
        p = self.params
        limit = min(len(msgs), p.max_write_messages)
        total = len(msgs[0].encode())
        n = 1
        while n < limit:
            total += len(msgs[n].encode())
            if total > p.max_write_bytes:
                break
            n += 1
        return n

    def drain(self) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        dirty = self._dirty
        self._dirty = {}
        for peer in dirty:
            subs, msgs, ctl = self._take(peer)
            for f in self._encode(subs, msgs, ctl):
                out.append((peer, f))
        return out

    def drain_rpcs(self) -> list[tuple[bytes, RPC]]:
        """Like drain() but unencoded, one RPC per peer (the simulator skips the codec)."""
        dirty = self._dirty
        if not dirty:
            return []
        out: list[tuple[bytes, RPC]] = []
        self._dirty = {}
        peers = self._peers
        for peer in dirty:
            st = peers.get(peer)
            if st is None:
                continue
            # _take, inlined: the simulator drains once per event
            subs = st.q_subs or []
            q = st.q_msgs
            msgs = list(q.values()) if q else []
            ctl = st.q_ctl
            st.q_subs = None
            st.q_msgs = None
            st.q_ctl = None
            if subs or msgs or ctl:
                out.append((peer, RPC(subs, msgs, ctl)))
        self.metrics.rpcs_sent += len(out)
        return out

    def _encode(self, subs: list[SubOpts], msgs: list[Message], ctl: Control | None) -> list[bytes]:
        frames = encode_frames(subs, msgs, ctl, self.params.max_rpc_size)
        m = self.metrics
        m.rpcs_sent += len(frames)
        m.frames_sent += len(frames)
        for f in frames:
            m.bytes_sent += len(f)
        return frames
