"""The trio driver of the sans-IO gossip router over a py-libp2p host.

It owns the I/O the router must not do:

- serves `/meshsub/1.2.0`, `/meshsub/1.1.0` and `/meshsub/1.0.0` and opens one
  outbound pubsub stream per connected peer (the libp2p pubsub convention: each
  side writes on the stream it opened and reads on the one the other opened);
- reads length-prefixed frames (size-capped) and hands every complete frame in
  the buffer to `router.receive` in one call, with `trio.current_time()`;
- runs `on_timer` at `next_deadline()`;
- one writer task per peer coalesces adaptively: when the peer's stream is
  idle and no other task is queueing for the same peer, what the router
  queued for it is written at once (no hold, so a message waits for nobody at
  low load); while a write is in flight, or while each scheduler round adds to
  the peer's queue (a few rounds at most), what queues meanwhile piles up in
  the router and leaves in the next write, taken with `drain_peer` up to the router's
  `max_write_messages` / `max_write_bytes`, cut at one Noise message (a long
  queue on a busy loop waits for a full one). One write on a Yamux/Noise
  stream costs ~0.65 ms of CPU against ~42 µs per message when 20 are
  coalesced, so the busier the node, the larger the writes and the cheaper
  each message;
- runs async validators (the router's ValidationRequest events) in tasks,
  bounded by a capacity limiter, and reports back with `validation_done`; or,
  given a `pooled_validator`, validates in worker threads or processes
  (p2pnode/validation_pool.py, `pool_params.mode`: the loop stays free while
  messages are decoded and signatures recovered, verdicts come back in
  arrival order, and a backlog over high water pauses the stream readers);
- disconnects peers the router gives up on (graylist, malformed frames).

The router bounds each peer's queue of forwarded messages (overflow counted in
its metrics and fed to the score); our own publishes are always queued, and
`publish` raises when nobody can receive the message.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio
from libp2p.abc import IHost, INetConn, INetStream, INetwork, INotifee
from libp2p.custom_types import TProtocol
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.peer.id import ID
from libp2p.protocol_muxer.exceptions import MultiselectClientError, ProtocolNotSupportedError
from multiaddr import Multiaddr

from gossip.events import (
    Delivered,
    Event,
    PeerShouldDisconnect,
    ValidationRequest,
)
from gossip.msgid import MSG_ID_STYLES, SignPolicy, StrictSign
from gossip.params import GossipSubParams
from gossip.router import PROTOCOLS, GossipRouter
from gossip.validation import ValidationResult
from gossip.wire import FrameBuffer, WireError
from p2pnode.errors import UserError
from p2pnode.validation_pool import PooledValidator, PoolParams, ValidationPool

log = logging.getLogger(__name__)

SyncValidator = Callable[[str, bytes, bytes], ValidationResult]
AsyncValidator = Callable[[str, bytes, bytes], Awaitable[ValidationResult]]

# One read takes what is buffered, up to this. Readers pause for validation only
# after a read is handed to the router, so what a handful of flooding peers can
# push past `high_water` in one round of reads must stay far below the router's
# max_pending_validations (4096), beyond which messages are dropped unseen, an
# honest peer's among them: 256 KiB reads (~900 orders each) from four flooding
# peers overflowed it and lost an honest order in the hostile-peer test; 64 KiB
# reads (~230 orders) leave the margin.
_READ_CHUNK = 1 << 16
# Opening our stream to a new peer races its own start-up: retry a few times,
# doubling the wait from 0.05 s between tries, before giving up on the peer.
_OPEN_ATTEMPTS = 8
_OPEN_FIRST_RETRY = 0.05
_CHANNEL_GONE = (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError)
# A writer with output waits at most this many scheduler rounds while other tasks
# keep queueing messages for its peer (readers forwarding), then writes.
_BUSY_ROUNDS = 64
# The most one stream write carries: a Yamux frame (12-byte header) that fits one
# Noise transport message (65535 bytes less the 16-byte tag). Yamux itself cuts
# at 65524 bytes of payload, which Noise then splits into 65519 + 17: two
# messages, each costing the full per-message price on both sides. Writing at
# most this much per call keeps one Noise message per Yamux frame.
_MAX_WRITE = 65535 - 16 - 12
# How many writers of this trio run (every PubSub in it) are yielding rounds
# before their write: they are no work a waiting writer could get more from.
_COALESCING: trio.lowlevel.RunVar[int] = trio.lowlevel.RunVar("pubsub_coalescing", default=0)


@dataclass(slots=True)
class DriverMetrics:
    streams_opened: int = 0
    stream_open_failures: int = 0
    writes: int = 0
    write_failures: int = 0
    oversized_frames: int = 0
    deliveries_dropped: int = 0
    validations_running: int = 0
    disconnects: int = 0


class _Notifee(INotifee):
    def __init__(self, send: trio.MemorySendChannel[tuple[bool, ID, bool]]) -> None:
        self._send = send

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        await trio.lowlevel.checkpoint()

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        await trio.lowlevel.checkpoint()

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        outbound = getattr(getattr(conn, "direction", None), "name", "") == "OUTBOUND"
        with contextlib.suppress(*_CHANNEL_GONE):
            self._send.send_nowait((True, conn.muxed_conn.peer_id, outbound))
        await trio.lowlevel.checkpoint()

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        with contextlib.suppress(*_CHANNEL_GONE):
            self._send.send_nowait((False, conn.muxed_conn.peer_id, False))
        await trio.lowlevel.checkpoint()

    async def listen(self, network: INetwork, multiaddr: Multiaddr) -> None:
        await trio.lowlevel.checkpoint()

    async def listen_close(self, network: INetwork, multiaddr: Multiaddr) -> None:
        await trio.lowlevel.checkpoint()


def libp2p_sign_policy(key_pair: Any, id_style: str = "go") -> StrictSign:
    """StrictSign with this host's libp2p key (Ed25519 ids embed the key: no `key` field).

    `id_style` names the message id function (gossip.msgid.MSG_ID_STYLES): "go"
    (`from || seqno`) for networks of go-libp2p peers and ours, "js" (public key ||
    seqno) for networks with js-libp2p peers on their default; see docs/protocol.md."""
    from libp2p.crypto.serialization import deserialize_public_key

    id_fn = MSG_ID_STYLES.get(id_style)
    if id_fn is None:
        raise UserError(
            f"id_style={id_style!r}: must be one of {sorted(MSG_ID_STYLES)} (message id function)"
        )

    def verify(author: bytes, payload: bytes, sig: bytes, key: bytes | None) -> bool:
        pid = ID(author)
        pub = deserialize_public_key(key) if key is not None else pid.extract_public_key()
        if pub is None or ID.from_pubkey(pub) != pid:
            return False
        return bool(pub.verify(payload, sig))

    return StrictSign(verifier=verify, signer=key_pair.private_key.sign, id_fn=id_fn)


class PubSub:
    """Gossipsub on a py-libp2p host. Start `run` in a nursery (it reports started)."""

    def __init__(
        self,
        host: IHost,
        *,
        params: GossipSubParams | None = None,
        router: GossipRouter | None = None,
        validator: SyncValidator | None = None,
        async_validator: AsyncValidator | None = None,
        pooled_validator: PooledValidator | None = None,
        pool_params: PoolParams | None = None,
        sign_policy: SignPolicy | None = None,
        score_params: Any = None,
        thresholds: Any = None,
        on_delivery: Callable[[Delivered], None] | None = None,
        on_event: Callable[[Event], None] | None = None,
        delivery_buffer: int = 65536,
        max_concurrent_validations: int = 256,
        seed: int | None = None,
    ) -> None:
        self.host = host
        if router is None:
            if validator is None and async_validator is None and pooled_validator is None:
                validator = _accept_all
            router = GossipRouter(
                local_peer=host.get_id().to_bytes(),
                params=params,
                rng=random.Random(seed),
                score_params=score_params,
                thresholds=thresholds,
                sign_policy=sign_policy,
                validator=(
                    validator if async_validator is None and pooled_validator is None else None
                ),
            )
        self.router = router
        self._async_validator = async_validator
        self._on_delivery = on_delivery
        self._on_event = on_event
        self.metrics = DriverMetrics()
        self._send_deliveries, self.deliveries = trio.open_memory_channel[Delivered](
            delivery_buffer if delivery_buffer > 0 else math.inf
        )
        self._ids: dict[bytes, ID] = {}
        self._wake: dict[bytes, trio.Event] = {}
        # peer -> generation of its outbound stream task; a task whose generation is
        # no longer current (the peer left and came back) must not touch the new one
        self._outbound: dict[bytes, int] = {}
        self._generation = 0
        self._timer_wake = trio.Event()
        self._limiter = trio.CapacityLimiter(max_concurrent_validations)
        self._nursery: trio.Nursery | None = None
        # cancel scopes of the running inbound readers (host tasks, not ours)
        self._readers: set[trio.CancelScope] = set()
        self._stopped = False
        self.pool: ValidationPool | None = None
        if pooled_validator is not None:
            self.pool = ValidationPool(pooled_validator, self._validated, self._after, pool_params)

    # ------------------------------------------------------------ public API

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        send, recv = trio.open_memory_channel[tuple[bool, ID, bool]](4096)
        notifee = _Notifee(send)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if self.pool is not None:
                self.pool.start()
            for proto in PROTOCOLS:
                self.host.set_stream_handler(TProtocol(proto), self._handle_inbound)
            self.host.get_network().register_notifee(notifee)
            for pid in list(self.host.get_network().get_connections_map()):
                send.send_nowait((True, pid, False))
            nursery.start_soon(self._peer_events, recv)
            nursery.start_soon(self._timer)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                # our writers die with this nursery; the readers run in the host's
                # stream-handler tasks: stop them too, so every stream closes cleanly
                self._stopped = True
                for scope in list(self._readers):
                    scope.cancel()
                if self.pool is not None:
                    self.pool.close()

    def subscribe(self, topic: str) -> None:
        self.router.subscribe(topic, trio.current_time())
        self._after()

    def unsubscribe(self, topic: str) -> None:
        self.router.unsubscribe(topic, trio.current_time())
        self._after()

    async def publish(self, topic: str, data: bytes) -> bytes:
        """Publish; returns the message id. Raises gossip.router.PublishError if nobody
        can receive it (the caller decides whether to retry)."""
        msg_id = self.router.publish(topic, data, trio.current_time())
        self._after()
        await trio.lowlevel.checkpoint()
        return msg_id

    def connected_pubsub_peers(self) -> list[bytes]:
        return self.router.peers()

    def topic_peers(self, topic: str) -> list[bytes]:
        """The peers subscribed to `topic`: who a message published there can reach."""
        return list(self.router.topic_peers(topic))

    def inbound_streams(self) -> int:
        """How many peers' own gossip streams to us are being read. A peer that has
        not opened its stream yet cannot send to us, and js-libp2p's gossipsub does
        not pick it for a mesh until it has."""
        return len(self._readers)

    # ------------------------------------------------------------ peers

    async def _peer_events(self, recv: trio.MemoryReceiveChannel[tuple[bool, ID, bool]]) -> None:
        assert self._nursery is not None
        async for up, pid, outbound in recv:
            pb = pid.to_bytes()
            if up:
                self._ids[pb] = pid
                if pb not in self._outbound:
                    self._generation += 1
                    self._outbound[pb] = self._generation
                    self._nursery.start_soon(self._open_outbound, pid, outbound, self._generation)
            else:
                try:
                    still = bool(self.host.get_network().get_connections(pid))
                except Exception:
                    still = False
                if not still:
                    self._drop_peer(pb)
                    self._ids.pop(pb, None)

    def _drop_peer(self, pb: bytes) -> None:
        self.router.remove_peer(pb, trio.current_time())
        self._outbound.pop(pb, None)
        ev = self._wake.pop(pb, None)
        if ev is not None:
            ev.set()
        self._after()

    async def _open_outbound(self, pid: ID, outbound: bool, gen: int) -> None:
        pb = pid.to_bytes()
        stream: INetStream | None = None
        delay = _OPEN_FIRST_RETRY
        for _ in range(_OPEN_ATTEMPTS):
            try:
                stream = await self.host.new_stream(pid, [TProtocol(p) for p in PROTOCOLS])
                break
            except Exception as exc:
                self.metrics.stream_open_failures += 1
                log.debug("pubsub stream to %s failed: %s", pid, exc)
                if _refused_every_protocol(exc) or not self._is_connected(pid):
                    break  # no pubsub there, or gone: retrying cannot help
                await trio.sleep(delay)
                delay *= 2
        if stream is None or self._outbound.get(pb) != gen:
            if self._outbound.get(pb) == gen:
                del self._outbound[pb]
            if stream is not None:  # opened for a peer that left: nothing went wrong
                await _close_quietly(stream)
            return
        self.metrics.streams_opened += 1
        proto = str(stream.get_protocol() or PROTOCOLS[0])
        self.router.add_peer(pb, proto, outbound, trio.current_time(), _remote_ip(stream))
        self._after()
        await self._writer(pb, stream, gen)

    @staticmethod
    def _busy() -> bool:
        """Whether tasks other than our coalescing writers are ready to run (readers
        with frames, the transport's own tasks): they may queue more for a waiting
        writer, and on a loop this busy a write saved is worth more than a round."""
        return trio.lowlevel.current_statistics().tasks_runnable > _COALESCING.get()

    def _is_connected(self, pid: ID) -> bool:
        try:
            return bool(self.host.get_network().get_connections(pid))
        except Exception:
            return False

    async def _writer(self, pb: bytes, stream: INetStream, gen: int) -> None:
        """Write what is queued for `pb`, one write per turn, with no timer.

        The writer sleeps until the router has output for the peer, takes it
        (bounded by the router's max_write_messages / max_write_bytes) and writes
        it. While that write is in flight, nothing wakes the writer: messages
        for the peer queue in the router, and the next turn takes them all in one
        write. Before taking its output, the writer yields scheduler rounds
        until two in a row added no message for the peer (other tasks, mostly
        readers forwarding, are no longer producing for it), up to `_BUSY_ROUNDS`
        or a full write (one Noise message's worth, by the bytes per message of
        the last write). A queue over a quarter of a full write keeps waiting past
        two quiet rounds while trio reports other tasks ready to run: there the
        loop is busy, and a frame saved is worth more than the rounds. A round of
        an idle node
        takes microseconds, so there a message is written the moment it is
        queued; on a busy node writes grow with the load (a write's fixed cost,
        ~0.65 ms of Yamux/Noise/trio CPU, is what a busy node runs out of first).
        """
        router = self.router
        metrics = self.metrics
        cap = router.params.max_write_messages
        per_msg = 256.0  # bytes per queued message in the last write: a full frame's count
        now_queued = 0
        failed = False
        try:
            while self._outbound.get(pb) == gen:
                if not router.has_output_for(pb):
                    ev = trio.Event()
                    self._wake[pb] = ev
                    await ev.wait()
                    continue
                # while other tasks keep queueing for this peer (readers forwarding),
                # let them, a scheduler round at a time; stop after two rounds in a
                # row added nothing (the order of tasks in a round varies, so one
                # empty round can be a producer that ran just before us twice), at
                # a full write, or after _BUSY_ROUNDS
                queued = router.queued_messages(pb)
                full = min(cap, max(1, int(_MAX_WRITE / per_msg)))
                quiet = 0
                _COALESCING.set(_COALESCING.get() + 1)
                try:
                    for _ in range(_BUSY_ROUNDS):
                        await trio.lowlevel.checkpoint()
                        now_queued = router.queued_messages(pb)
                        if now_queued >= full:
                            break
                        quiet = quiet + 1 if now_queued == queued else 0
                        # a short queue (an idle or lightly loaded node) goes as soon
                        # as producers pause; a long one waits for a full frame while
                        # the loop has other work that may add to it
                        if quiet >= 2 and (now_queued < full >> 2 or not self._busy()):
                            break
                        queued = now_queued
                finally:
                    _COALESCING.set(_COALESCING.get() - 1)
                frames = router.drain_peer(pb)
                if not frames:
                    continue
                out = frames[0] if len(frames) == 1 else b"".join(frames)
                if now_queued:
                    per_msg = max(len(out) / now_queued, 1.0)
                if len(out) <= _MAX_WRITE:
                    await stream.write(out)
                else:
                    view = memoryview(out)
                    for at in range(0, len(out), _MAX_WRITE):
                        await stream.write(bytes(view[at : at + _MAX_WRITE]))
                metrics.writes += 1
        except Exception as exc:
            failed = True
            self.metrics.write_failures += 1
            log.debug("pubsub write to %s failed: %s", pb.hex(), exc)
        finally:
            self._wake.pop(pb, None)
            # a clean end (the peer left, or we stop) closes: the peer reads EOF;
            # only a failed stream is reset
            await (_reset_quietly(stream) if failed else _close_quietly(stream))
            if self._outbound.get(pb) == gen:
                # our stream died while the connection may live: forget the peer and
                # close the connection, so that a redial brings fresh streams instead
                # of a peer we can hear but never answer
                self._drop_peer(pb)
                pid = self._ids.get(pb)
                if pid is not None and self._nursery is not None:
                    with contextlib.suppress(RuntimeError):  # shutting down: nothing to do
                        self._nursery.start_soon(self._disconnect, pid)

    async def _handle_inbound(self, stream: INetStream) -> None:
        if self._stopped:
            await _close_quietly(stream)
            return
        with trio.CancelScope() as scope:
            self._readers.add(scope)
            try:
                await self._read_inbound(stream)
            finally:
                self._readers.discard(scope)

    async def _read_inbound(self, stream: INetStream) -> None:
        pid = stream.muxed_conn.peer_id
        pb = pid.to_bytes()
        self._ids.setdefault(pb, pid)
        router = self.router
        if not router.has_peer(pb):
            # their stream came first: register them now so their hello is not lost
            proto = str(stream.get_protocol() or PROTOCOLS[0])
            router.add_peer(pb, proto, False, trio.current_time(), _remote_ip(stream))
        limit = router.params.max_rpc_size
        pool = self.pool
        frames = FrameBuffer(limit)
        failed = False
        try:
            while True:
                try:
                    chunk = await stream.read(_READ_CHUNK)
                except StreamEOF:
                    break
                if not chunk:
                    break
                try:
                    whole = frames.feed(chunk)
                except WireError as exc:
                    # an oversized frame: the stream cannot be resynchronised
                    failed = True
                    self.metrics.oversized_frames += 1
                    router.note_malformed(pb, str(exc))
                    self._after()
                    break
                if whole:
                    router.receive(pb, whole, trio.current_time())
                    self._after()
                    if pool is not None:
                        # validation is behind: stop reading, the peer's stream fills
                        await pool.wait_for_room()
                    # a flooding peer's buffered frames must not starve the other tasks
                    # (the local API among them): yield once per chunk handled
                    await trio.lowlevel.checkpoint()
        except Exception as exc:
            failed = True
            log.debug("pubsub read from %s ended: %s", pid, exc)
        finally:
            # EOF from the peer, or our clean stop: close; bad bytes or errors: reset
            await (_reset_quietly(stream) if failed else _close_quietly(stream))

    # ------------------------------------------------------------ timer and events

    async def _timer(self) -> None:
        router = self.router
        while True:
            deadline = router.next_deadline()
            if deadline is None:
                deadline = trio.current_time() + 0.1
            with trio.move_on_at(deadline):
                await self._timer_wake.wait()
            self._timer_wake = trio.Event()
            router.on_timer(trio.current_time())
            self._after()

    def _after(self) -> None:
        """Wake writers of peers with output, and act on router events."""
        router = self.router
        if router.has_pending() and self._wake:
            wakes = self._wake
            for pb in router.pending_peers():
                wake = wakes.pop(pb, None)
                if wake is not None:  # idle writer; a busy one finds the output itself
                    wake.set()
        for ev in router.events():
            self._handle_event(ev)

    def _handle_event(self, ev: Event) -> None:
        if isinstance(ev, Delivered):
            if self._on_delivery is not None:
                try:
                    self._on_delivery(ev)
                except Exception:
                    log.exception("delivery callback failed")
            else:
                try:
                    self._send_deliveries.send_nowait(ev)
                except trio.WouldBlock:
                    self.metrics.deliveries_dropped += 1
        elif isinstance(ev, ValidationRequest):
            if self.pool is not None:
                self.pool.submit(ev.msg_id, ev.topic, ev.data, ev.received_from)
            else:
                assert self._nursery is not None
                self._nursery.start_soon(self._validate, ev)
        elif isinstance(ev, PeerShouldDisconnect):
            pid = self._ids.get(ev.peer)
            if pid is not None and self._nursery is not None:
                self.metrics.disconnects += 1
                self._nursery.start_soon(self._disconnect, pid)
        if self._on_event is not None:
            try:
                self._on_event(ev)
            except Exception:
                log.exception("event callback failed")

    async def _validate(self, req: ValidationRequest) -> None:
        validator = self._async_validator
        result = ValidationResult.IGNORE
        if validator is not None:
            async with self._limiter:
                self.metrics.validations_running += 1
                try:
                    result = await validator(req.topic, req.data, req.received_from)
                except Exception:
                    log.exception("async validator failed; rejecting")
                    result = ValidationResult.REJECT
                finally:
                    self.metrics.validations_running -= 1
        self.router.validation_done(req.msg_id, result, trio.current_time())
        self._after()

    def _validated(self, msg_id: bytes, result: ValidationResult) -> None:
        """A verdict from the validation pool (on the loop, in arrival order)."""
        self.router.validation_done(msg_id, result, trio.current_time())

    async def _disconnect(self, pid: ID) -> None:
        self._drop_peer(pid.to_bytes())  # forget it now, whatever the transport does
        with trio.move_on_after(5):
            try:
                await self.host.disconnect(pid)
            except Exception as exc:
                log.debug("disconnect %s failed: %s", pid, exc)


def _accept_all(topic: str, data: bytes, peer: bytes) -> ValidationResult:
    return ValidationResult.ACCEPT


def _refused_every_protocol(exc: BaseException) -> bool:
    """Whether the peer answered "na" to every pubsub protocol (it runs none).

    py-libp2p raises StreamFailure from a MultiselectClientError both when every
    protocol was refused and when negotiation timed out; only the message tells
    them apart, so this is the one place that reads it (refused: give up;
    timed out: worth a retry). A ProtocolNotSupportedError, if a later version
    lets it through, says the same by its type."""
    err: BaseException | None = exc
    while err is not None:
        if isinstance(err, ProtocolNotSupportedError):
            return True
        if isinstance(err, MultiselectClientError):
            return "not supported" in str(err)
        err = err.__cause__
    return False


def _remote_ip(stream: INetStream) -> str | None:
    try:
        addr = stream.get_remote_address()
    except Exception:
        return None
    return addr[0] if addr else None


_STREAM_SHUTDOWN_TIMEOUT = 1.0  # seconds a close or reset may take, even while we are cancelled


async def _reset_quietly(stream: INetStream) -> None:
    """Abort: the peer reads a reset (it must not trust what it got half of)."""
    with (
        trio.CancelScope(shield=True),
        trio.move_on_after(_STREAM_SHUTDOWN_TIMEOUT),
        contextlib.suppress(Exception),
    ):
        await stream.reset()


async def _close_quietly(stream: INetStream) -> None:
    """End cleanly: the peer reads EOF after everything written, as on any orderly
    stop; a close that fails or hangs falls back to a reset."""
    with trio.CancelScope(shield=True):
        with trio.move_on_after(_STREAM_SHUTDOWN_TIMEOUT):
            try:
                await stream.close()
                return
            except Exception:
                pass
        await _reset_quietly(stream)
