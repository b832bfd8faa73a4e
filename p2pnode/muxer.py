"""Yamux as the node runs it: receive-window credit given back by half windows.

py-libp2p's Yamux (0.8) answers nearly every read with a WINDOW_UPDATE frame: its
"partial slack" branch fires whenever any credit is outstanding, even with
PY_YAMUX_RELEASE_ON_READ=0. Under gossip a stream reads one small frame at a time,
so every frame the peer sends costs a frame back, and on each side a Noise
message, a socket write, a read and the muxer's handling of it: measured as about
a tenth of a daemon's CPU at 40 messages a second.

The rule here is go-yamux's (and the Yamux spec's own suggestion): credit is given
back once what was read since the last update reaches half the target window
(128 KiB at first). A sender that honours our window then always has at least half
a window to send in, so it never waits on us while we keep reading; the window's
auto-tuning (growing the target up to 16 MiB for fast streams) is py-libp2p's and
is kept. Nothing on the wire changes but how often WINDOW_UPDATE frames are sent.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

import trio
from libp2p.abc import IHost, IMuxedConn, IRawConnection, ISecureConn
from libp2p.peer.id import ID
from libp2p.security.noise.io import MAX_PLAINTEXT_LENGTH, NoiseTransportReadWriter
from libp2p.security.secure_session import SecureSession
from libp2p.stream_muxer.muxer_multistream import MuxerMultistream
from libp2p.stream_muxer.yamux import yamux as _yamux
from libp2p.stream_muxer.yamux.yamux import (
    HEADER_SIZE,
    MAX_MESSAGE_SIZE,
    TYPE_DATA,
    YAMUX_HEADER_FORMAT,
    Yamux,
    YamuxStream,
)
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID

# py-libp2p's tuning knobs (PY_YAMUX_BATCH_THRESHOLD_DIV, PY_YAMUX_DISABLE_HYSTERESIS),
# read once here: py-libp2p reads the environment again on every read of every stream
_THRESHOLD_DIVISOR = _yamux._yamux_batch_threshold_divisor()
_NO_HYSTERESIS = _yamux._yamux_disable_hysteresis()

_HEADER = struct.Struct(YAMUX_HEADER_FORMAT)
_MAX_BODY = MAX_MESSAGE_SIZE - HEADER_SIZE
_yamux_log = logging.getLogger(_yamux.__name__)


class HalfWindowYamuxStream(YamuxStream):
    """A Yamux stream that gives back receive credit by half windows only, and
    writes a frame that fits the send window without taking locks."""

    async def write(self, data: bytes) -> None:
        """One DATA frame at once when the peer's window has room for all of it.

        py-libp2p's write takes the stream's write lock and its window lock (each a
        trio scheduler round trip) to build every frame. With room in the window and
        neither lock held, building the frame and taking the window are one step
        with no await between them, which the locks would only serialise; the frame
        then goes to the connection's frame writer, which keeps the connection's
        frames in order. Anything else (a window too small, a body over a frame, a
        lock held, a closed stream) takes py-libp2p's path.
        """
        n = len(data)
        writer = getattr(self.rw_lock, "_writer_lock", None)
        if (
            0 < n <= self.send_window
            and n <= _MAX_BODY
            and not self.send_closed
            and not self.closed
            and not self.window_lock.locked()
            and writer is not None
            and writer.value
        ):
            self.send_window -= n
            await self.conn._write_frame(_HEADER.pack(0, TYPE_DATA, 0, self.stream_id, n) + data)
            return
        await super().write(data)

    async def _auto_tune_and_send_window_update(self, *, bytes_read: int = 0) -> None:
        total_delta = 0
        async with self.window_lock:
            if bytes_read > 0:
                self._pending_recv_release += bytes_read
            buffered = len(self.conn.stream_buffers.get(self.stream_id, b""))
            delta = self.target_recv_window - (self.recv_window + buffered)
            threshold = 0 if _NO_HYSTERESIS else self.target_recv_window // _THRESHOLD_DIVISOR
            if delta >= threshold and delta > 0:
                total_delta = self._grow_to_delta(buffered)
                total_delta += self._apply_autotune_epoch(buffered)
                self._pending_recv_release = 0
        if total_delta > 0:
            await self.send_window_update(total_delta, skip_lock=True)


class _StreamTable(dict[int, YamuxStream]):
    """The muxer's streams; each py-libp2p stream put in becomes a half-window one.

    py-libp2p builds its streams by name inside two long methods; turning them into
    the subclass as they are registered (before any byte is read on them) keeps
    those methods as they are.
    """

    def __setitem__(self, key: int, value: YamuxStream) -> None:
        if type(value) is YamuxStream:
            value.__class__ = HalfWindowYamuxStream
        super().__setitem__(key, value)


class HalfWindowYamux(Yamux):
    """py-libp2p's Yamux with HalfWindowYamuxStream streams."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.streams = _StreamTable()
        self._noise, self._raw = _noise_layers(self.secured_conn)

    async def _write_frame(self, data: bytes) -> None:
        """Write one frame: encrypt it as one Noise message and hand it to the TCP
        connection, under the connection's write lock (which keeps the Noise nonces
        in wire order).

        py-libp2p passes each frame through four more coroutine layers (the secure
        session, two message writers, the raw connection) and formats a debug line
        for it whatever the log level. With the node's layers below (Noise over the
        raw TCP connection) this does the same work directly; with others, or with
        py-libp2p's debug log on, its own path runs.
        """
        noise, raw = self._noise, self._raw
        if noise is None or raw is None or _yamux_log.isEnabledFor(logging.DEBUG):
            await super()._write_frame(data)
            return
        lock = self._write_lock
        if lock.locked():
            await lock.acquire()
        else:
            lock.acquire_nowait()
        try:
            if len(data) <= MAX_PLAINTEXT_LENGTH:
                sealed = noise.encrypt(data)
                await raw.write(len(sealed).to_bytes(2, "big") + sealed)
            else:
                await self.secured_conn.write(data)
        finally:
            lock.release()
        await trio.lowlevel.checkpoint()

    async def _read_data_body(self, length: int) -> bytes:
        """A DATA frame's body. py-libp2p bounds the wait for it with a 60 s
        deadline (a cancel scope per frame, ~4 % of a daemon's CPU at 40 msg/s); a
        body already decrypted in the secure session's buffer, as it is when the
        peer wrote header and body in one Noise message, needs no waiting."""
        conn = self.secured_conn
        held = getattr(conn, "high_watermark", 0) - getattr(conn, "low_watermark", 0)
        if isinstance(held, int) and held >= length:
            return await conn.read(length)
        return await super()._read_data_body(length)


def _noise_layers(
    conn: ISecureConn,
) -> tuple[NoiseTransportReadWriter | None, IRawConnection | None]:
    """The Noise transport and raw connection under `conn` when it is exactly the
    session py-libp2p's Noise builds (its writes then are: encrypt, 2-byte length,
    raw write); (None, None) for anything else."""
    if type(conn) is not SecureSession:
        return None, None
    noise = conn.conn
    if type(noise) is not NoiseTransportReadWriter:
        return None, None
    raw = getattr(noise.read_writer, "read_write_closer", None)
    if raw is None or not hasattr(raw, "write"):
        return None, None
    return noise, raw


class _MuxerSelection(MuxerMultistream):
    """py-libp2p's muxer negotiation, building the class it was given for Yamux.

    py-libp2p's own builds its Yamux by name whatever class the options map the
    protocol to; here a Yamux subclass in the options is honoured.
    """

    async def new_conn(self, conn: ISecureConn, peer_id: ID) -> IMuxedConn:
        protocol, transport_class = await self._selector.select(
            conn, conn.is_initiator, self.negotiate_timeout
        )
        if protocol == YAMUX_PROTOCOL_ID and issubclass(transport_class, Yamux):
            muxed: IMuxedConn = transport_class(conn, peer_id, is_initiator=conn.is_initiator)
        else:
            muxed = transport_class(conn, peer_id)
        return self._annotate_connection(muxed, conn, protocol)


def use_half_window_yamux(host: IHost) -> None:
    """Make `host`'s new connections run HalfWindowYamux (its other muxer options,
    none in the node, are kept as they were)."""
    upgrader = host.get_network().upgrader  # type: ignore[attr-defined]
    options = dict(upgrader.muxer_multistream.transports)
    for protocol, cls in options.items():
        if protocol == YAMUX_PROTOCOL_ID and cls is Yamux:
            options[protocol] = HalfWindowYamux
    upgrader.muxer_multistream = _MuxerSelection(
        options, upgrader.muxer_multistream.negotiate_timeout
    )
