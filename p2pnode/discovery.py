"""Finding and keeping peers: bootstrap seeds, peer exchange, re-dial with backoff.

The connection keeper runs one loop: whenever the node holds fewer than
`network.min_connections` connections it asks connected peers for signed peer
records (`p2pnode.px`) and dials the best candidates from the peer table; above
`network.max_connections` it drops the newest extra connections. A dropped
connection wakes the loop at once. Every one of those choices, and the re-dial
backoff, is made by the sans-IO `p2pnode.discovery_policy`; this module is its
driver: it holds the clock, the libp2p host, the peer table and the px streams.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from typing import Any

import trio
from libp2p.abc import IHost, INetConn, INetStream, INetwork, INotifee
from libp2p.crypto.keys import KeyPair
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr
from multiaddr import Multiaddr

from p2pnode import px
from p2pnode.config import NodeConfig
from p2pnode.discovery_policy import DiscoveryParams, DiscoveryPolicy
from p2pnode.errors import RemoteError
from p2pnode.metrics import NodeMetrics
from p2pnode.storage import Storage

log = logging.getLogger(__name__)

DIAL_TIMEOUT = 5.0
PX_TIMEOUT = 5.0
MAX_KNOWN_PEERS = 5000  # peer table rows kept (seeds not counted)
MAX_DIAL_FAILURES = 8  # consecutive failures before a peer is forgotten (~4 min at defaults)


class _Notifee(INotifee):
    """Turns connection events into a wake-up of the keeper loop."""

    def __init__(self, discovery: Discovery) -> None:
        self._d = discovery

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self._d.on_connected(conn)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self._d.on_disconnected(conn)

    async def listen(self, network: INetwork, multiaddr: Multiaddr) -> None:
        return None

    async def listen_close(self, network: INetwork, multiaddr: Multiaddr) -> None:
        return None


class Discovery:
    def __init__(
        self,
        host: IHost,
        config: NodeConfig,
        storage: Storage,
        metrics: NodeMetrics,
        key_pair: KeyPair,
        rng: random.Random | None = None,
    ) -> None:
        self.host = host
        self.config = config
        self.net = config.network
        self.storage = storage
        self.metrics = metrics
        self.key_pair = key_pair
        self.rng = rng or random.Random()
        self.me = host.get_id()
        self.policy = DiscoveryPolicy(
            DiscoveryParams.from_network(self.net), self.rng, self.me.to_base58()
        )
        self._wake = trio.Event()
        self._own_record = b""
        # who sees whom, for the web view: the peers each neighbour named in its last
        # px answer; one entry per connected neighbour, each at most px_max_records
        self.named_by: dict[str, tuple[str, ...]] = {}
        # the role each peer told us in a px exchange with it (over its own Noise
        # channel), newest last; at most MAX_KNOWN_PEERS entries
        self.roles: dict[str, str] = {}
        # the roles each connected neighbour gave for the peers it named (hearsay)
        self.named_roles: dict[str, dict[str, str]] = {}

    # -- lifecycle ---------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        announce = [Multiaddr(a) for a in self.net.announce] or self.host.get_transport_addrs()
        if not self.net.announce and self.net.listen_host == "0.0.0.0":
            log.warning(
                "listening on 0.0.0.0 without network.announce: peers will be told to dial "
                "0.0.0.0; set network.announce to this machine's reachable address"
            )
        self._own_record = px.make_record(self.key_pair.private_key, self.me, announce)
        self.host.set_stream_handler(TProtocol(px.PROTOCOL_ID), self._handle_px)
        self.host.get_network().register_notifee(_Notifee(self))
        self._load_seeds()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await self._keeper_loop()

    def _load_seeds(self) -> None:
        for addr in self.net.bootstrap:
            info = info_from_p2p_addr(Multiaddr(addr))
            pid = info.peer_id.to_base58()
            if info.peer_id == self.me:
                continue  # a seed listing itself
            self.policy.seeds.add(pid)
            self.storage.upsert_peer(pid, [str(a) for a in info.addrs], source="seed")

    # -- events ------------------------------------------------------------

    def on_connected(self, conn: INetConn) -> None:
        pid = _conn_peer(conn)
        if pid is not None:
            self.policy.connected(pid, time.monotonic())
        self.metrics.connections.set(len(self.host.get_connected_peers()))
        self._wake.set()

    def on_disconnected(self, conn: INetConn) -> None:
        pid = _conn_peer(conn)
        if pid is not None:
            still = bool(self.host.get_network().get_connections(ID.from_base58(pid)))
            self.policy.disconnected(pid, still_connected=still)
            if not still:
                self.named_by.pop(pid, None)
                self.named_roles.pop(pid, None)
        self.metrics.connections.set(len(self.host.get_connected_peers()))
        self._wake.set()

    def wake(self) -> None:
        """Someone stored new peers (e.g. from the peers topic): look at the table now."""
        self._wake.set()

    # -- the keeper ----------------------------------------------------------

    async def _keeper_loop(self) -> None:
        while True:
            self._wake = trio.Event()  # before the round: what happens during it re-wakes us
            try:
                await self._tick()
            except trio.Cancelled:
                raise
            except Exception as exc:  # one bad round must not stop discovery
                self.metrics.errors.labels(kind="discovery").inc()
                log.warning("discovery round failed: %s", exc)
            with trio.move_on_after(self.net.redial_interval):
                await self._wake.wait()
            # let a burst of connection events settle into one round
            await trio.sleep(0.05)

    async def _tick(self) -> None:
        connected = self.connected_ids()
        self.metrics.connections.set(len(connected))
        self.storage.prune_peers(max_rows=MAX_KNOWN_PEERS, max_failures=MAX_DIAL_FAILURES)
        self.metrics.known_peers.set(self.storage.count_peers())
        decided = self.policy.plan(time.monotonic(), connected, self.storage.list_peers)
        for pid in decided.ask:
            self._nursery.start_soon(self._ask_px, pid)
        for row in decided.dial:
            self._nursery.start_soon(self._dial, row.peer_id, row.addrs)
        for pid in decided.drop:
            try:
                await self.host.disconnect(ID.from_base58(pid))
            except Exception as exc:
                log.debug("disconnect %s failed: %s", pid, exc)

    def connected_ids(self) -> set[str]:
        return {p.to_base58() for p in self.host.get_connected_peers()}

    async def _dial(self, pid: str, addrs: tuple[str, ...]) -> None:
        try:
            try:
                info = PeerInfo(ID.from_base58(pid), [Multiaddr(a) for a in addrs])
            except Exception as exc:  # a row nobody can dial: drop it, never crash the loop
                log.info("forgetting peer %s: undialable entry (%s)", pid, exc)
                self.metrics.errors.labels(kind="undialable_peer").inc()
                self.storage.forget_peer(pid)
                self.policy.dial_abandoned(pid)
                return
            ok = False
            with trio.move_on_after(DIAL_TIMEOUT):
                try:
                    await self.host.connect(info)
                    ok = True
                except Exception as exc:
                    log.debug("dial %s failed: %s", pid, exc)
            if ok:
                self.metrics.dials.labels(result="ok").inc()
                self.storage.mark_connected(pid)
                self.policy.dial_succeeded(pid, time.monotonic())
                self._nursery.start_soon(self._ask_px, pid)  # a new neighbour: ask it now
            else:
                self.metrics.dials.labels(result="failed").inc()
                failures = self.storage.mark_failed(pid)
                self.policy.dial_failed(pid, time.monotonic(), failures)
        finally:
            self.policy.dial_ended(pid)
            self._wake.set()

    # -- peer exchange -------------------------------------------------------

    async def _ask_px(self, pid: str) -> None:
        stream = None
        if not self.host.get_network().get_connections(ID.from_base58(pid)):
            return  # gone meanwhile: new_stream would dial it, around our backoff
        try:
            with trio.fail_after(PX_TIMEOUT):
                stream = await self.host.new_stream(
                    ID.from_base58(pid), [TProtocol(px.PROTOCOL_ID)]
                )
                request = px.encode_request(self._own_record, self.net.px_max_records, self.role)
                await stream.write(request)
                self.metrics.px_requests.labels(direction="sent").inc()
                body = await _read_frame(stream)
            answer = px.read_response(body)
            self._note_role(pid, answer.role)
            told: dict[str, str] = {}
            verified = []
            for raw, role in list(zip(answer.records, answer.roles, strict=True))[
                : self.net.px_max_records
            ]:
                rec = self._verify(raw)
                if rec is None:
                    continue
                verified.append(rec)
                if role is not None:
                    told[rec.peer_id.to_base58()] = role
            fresh = [self._store(rec, source="px") for rec in verified]
            if self.host.get_network().get_connections(ID.from_base58(pid)):
                named = {r.peer_id.to_base58() for r in verified} - {pid}
                self.named_by[pid] = tuple(sorted(named))
                self.named_roles[pid] = {k: v for k, v in told.items() if k in named}
            if any(fresh):
                self._wake.set()  # new candidates: dial them now, not at the next round
        except trio.TooSlowError:
            self.metrics.errors.labels(kind="px_timeout").inc()
        except RemoteError as exc:
            self.metrics.errors.labels(kind="px_remote").inc()
            log.info("peer %s sent a bad px answer: %s", pid, exc)
        except Exception as exc:
            self.metrics.errors.labels(kind="px_stream").inc()
            log.debug("px with %s failed: %s", pid, exc)
        finally:
            if stream is not None:
                with trio.move_on_after(1):
                    await _close(stream)

    async def _handle_px(self, stream: INetStream) -> None:
        remote = stream.muxed_conn.peer_id
        try:
            with trio.fail_after(PX_TIMEOUT):
                body = await _read_frame(stream)
                request = px.read_request(body)
                record, want = request.record, request.want
                try:
                    verified = px.verify_record(record)
                except RemoteError:
                    self.metrics.px_records.labels(verdict="rejected").inc()
                    raise
                if verified.peer_id != remote:
                    raise RemoteError("px request carries another peer's record")
                self._store(verified, source="inbound")
                self._note_role(remote.to_base58(), request.role)
                shared = self._records_to_share(remote, want)
                mine = self.me.to_base58()
                roles = [self.role if pid == mine else self.roles.get(pid) for pid, _ in shared]
                answer = px.encode_response([r for _, r in shared], self.role, roles)
                await stream.write(answer)
                self.metrics.px_requests.labels(direction="answered").inc()
        except RemoteError as exc:
            self.metrics.errors.labels(kind="px_remote").inc()
            log.info("peer %s sent a bad px request: %s", remote, exc)
        except Exception as exc:
            self.metrics.errors.labels(kind="px_stream").inc()
            log.debug("px request from %s failed: %s", remote, exc)
        finally:
            with trio.move_on_after(1):
                await _close(stream)

    def _records_to_share(self, asker: ID, want: int) -> list[tuple[str, bytes]]:
        """(peer id, signed record) pairs to answer with, ours first."""
        limit = min(want, self.net.px_max_records)
        out = [(self.me.to_base58(), self._own_record)]
        skip = {asker.to_base58(), self.me.to_base58()}
        connected = self.connected_ids()
        rows = [r for r in self.storage.list_peers() if r.record and r.peer_id not in skip]
        # peers we are connected to right now are the likeliest to answer a dial
        rows.sort(key=lambda r: (r.peer_id not in connected, -r.last_seen))
        out.extend((r.peer_id, r.record) for r in rows if r.record is not None)
        return out[:limit]

    @property
    def role(self) -> str:
        """What we tell peers in px: the role this node runs as."""
        return self.config.node.role

    def _note_role(self, pid: str, role: str | None) -> None:
        """What a peer said it runs as, in its own px exchange with us."""
        if role is None:
            return
        self.roles.pop(pid, None)
        self.roles[pid] = role
        while len(self.roles) > MAX_KNOWN_PEERS:
            self.roles.pop(next(iter(self.roles)))

    # -- the gossip router's peer exchange (PRUNE) uses the same signed records --

    def signed_record_of(self, peer: bytes) -> bytes | None:
        """The signed record to offer for `peer` in a PRUNE (router's PeerRecordSource)."""
        try:
            pid = ID(peer)
        except Exception:
            return None
        if pid == self.me:
            return self._own_record or None
        row = self.storage.get_peer(pid.to_base58())
        return row.record if row is not None else None

    def accept_offered(self, peer: bytes, envelope: bytes | None) -> bool:
        """A record offered for `peer` in a gossip PRUNE: stored only if valid and
        signed by that very peer. Returns whether it was stored."""
        if not envelope:
            return False
        try:
            rec = px.verify_record(envelope)
        except RemoteError:
            self.metrics.px_records.labels(verdict="rejected").inc()
            return False
        if rec.peer_id.to_bytes() != peer:
            self.metrics.px_records.labels(verdict="rejected").inc()
            return False
        self._store(rec, source="gossip")
        self._wake.set()
        return True

    def _accept_record(self, envelope: bytes, *, source: str) -> bool:
        """Verify and store; True when it told us something new."""
        rec = self._verify(envelope)
        return rec is not None and self._store(rec, source=source)

    def _verify(self, envelope: bytes) -> px.VerifiedRecord | None:
        try:
            return px.verify_record(envelope)
        except RemoteError as exc:
            self.metrics.px_records.labels(verdict="rejected").inc()
            log.info("rejected a peer record: %s", exc)
            return None

    def _store(self, rec: px.VerifiedRecord, *, source: str) -> bool:
        if rec.peer_id == self.me:
            return False
        pid = rec.peer_id.to_base58()
        fresh = self.storage.upsert_peer(
            pid, rec.addrs, source=source, record=rec.envelope, seq=rec.seq
        )
        if fresh:
            self.policy.record_refreshed(pid)
        self.metrics.px_records.labels(verdict="accepted" if fresh else "stale").inc()
        return fresh


def _conn_peer(conn: INetConn) -> str | None:
    try:
        return str(conn.muxed_conn.peer_id.to_base58())
    except Exception:
        return None


async def _read_frame(stream: INetStream) -> bytes:
    """One varint-length-prefixed frame, refusing anything over MAX_FRAME_BYTES."""
    buf = bytearray()
    length = 0
    shift = 0
    while True:
        chunk = await stream.read(1)
        if not chunk:
            raise RemoteError("px stream closed inside the length prefix")
        b = chunk[0]
        length |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if shift > 28:
            raise RemoteError("px length prefix too long")
    if length > px.MAX_FRAME_BYTES:
        raise RemoteError(f"px frame of {length} bytes: allowed at most {px.MAX_FRAME_BYTES}")
    while len(buf) < length:
        chunk = await stream.read(length - len(buf))
        if not chunk:
            raise RemoteError("px stream closed inside a frame")
        buf.extend(chunk)
    return bytes(buf)


async def _close(stream: INetStream) -> None:
    with contextlib.suppress(Exception):
        await stream.close()
