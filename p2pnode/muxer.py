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

from typing import Any

from libp2p.abc import IHost, IMuxedConn, ISecureConn
from libp2p.peer.id import ID
from libp2p.stream_muxer.muxer_multistream import MuxerMultistream
from libp2p.stream_muxer.yamux import yamux as _yamux
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux, YamuxStream

# py-libp2p's tuning knobs (PY_YAMUX_BATCH_THRESHOLD_DIV, PY_YAMUX_DISABLE_HYSTERESIS),
# read once here: py-libp2p reads the environment again on every read of every stream
_THRESHOLD_DIVISOR = _yamux._yamux_batch_threshold_divisor()
_NO_HYSTERESIS = _yamux._yamux_disable_hysteresis()


class HalfWindowYamuxStream(YamuxStream):
    """A Yamux stream that gives back receive credit by half windows only."""

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
