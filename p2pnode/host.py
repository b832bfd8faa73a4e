"""The libp2p host as the node runs it: TCP, Noise only, Yamux only.

py-libp2p's default security list also offers plaintext, secio and TLS; a node
that accepted plaintext could be impersonated and read by anyone on the path, so
the upgrader is given exactly one security transport and one muxer. Identify and
ping come with the host by default.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Awaitable, Callable
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import IHost, IRawConnection
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.io.exceptions import ConnectionClosedError
from libp2p.io.trio import TrioTCPStream
from libp2p.network.auto_connector import AutoConnector
from libp2p.network.config import ConnectionConfig
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.transport.tcp.tcp import TCP, TCPListener

from p2pnode.metrics import NodeMetrics
from p2pnode.muxer import use_half_window_yamux

# Yamux window updates after half the window is read (the rule of the other libp2p
# implementations) instead of after every read: half the frames on the wire under
# gossip load. The muxer reads this at call time; an operator's own value wins.
os.environ.setdefault("PY_YAMUX_RELEASE_ON_READ", "0")


# What one socket read asks the kernel for. py-libp2p reads a Noise message as its
# 2-byte length and then its body, and every read is a trio socket call with its
# scheduler checkpoints; reading ahead serves both, and the next messages already
# on the socket, from one call.
READ_AHEAD = 65536


def _reset(error: BaseException) -> ConnectionClosedError:
    """A broken socket as py-libp2p's TCP stream reports it, so that the muxer above
    reacts to it the same way."""
    return ConnectionClosedError(f"TCP connection reset by remote peer: {error}", transport="tcp")


class _CountingTCPStream(TrioTCPStream):
    """A TCP stream that reads ahead, writes at once when it can, and adds what
    passes through it to the node's byte counters.

    At most READ_AHEAD bytes are held ahead of the reader: what the peer sent and
    the connection's reader has not asked for yet, as the kernel would hold it.

    A write with no other write in flight goes straight to the socket (one
    non-blocking `write` call); what the kernel does not take at once, and a write
    that finds another in flight, take trio's path behind the stream's write lock,
    so bytes leave in the order they were written. trio's path costs two scheduler
    round trips per call (the lock, and the checkpoint its socket send makes after
    a send that did not block). This layer makes no checkpoint of its own on a
    write: its writer above (the muxer's frame writer; the handshakes, which read
    next) makes one per frame. A read takes the read lock without its round trip;
    the socket read itself still yields once, so a peer that keeps the socket full
    cannot keep the loop from other tasks.
    """

    def __init__(self, stream: trio.SocketStream, metrics: NodeMetrics) -> None:
        super().__init__(stream)
        self._metrics = metrics
        self._ahead = b""
        self._at = 0

    async def write(self, data: bytes) -> None:
        lock = self.write_lock
        sock = self.stream.socket
        fd = sock.fileno()
        if lock.locked() or fd < 0 or sock.did_shutdown_SHUT_WR or not data:
            await super().write(data)  # behind the write in flight; closed: trio's answer
        else:
            lock.acquire_nowait()
            try:
                try:
                    sent = os.write(fd, data)
                except BlockingIOError:
                    sent = 0
                except OSError as error:
                    # as trio maps it: a closed descriptor is a local close (py-libp2p
                    # returns quietly), anything else a broken connection
                    if error.errno == errno.EBADF:
                        return
                    raise _reset(error) from error
                if sent < len(data):
                    await self._send_rest(memoryview(data)[sent:])
            finally:
                lock.release()
        self._metrics.bytes_out.inc(len(data))

    async def _receive(self, want: int) -> bytes:
        """One socket read, with py-libp2p's mapping of its errors (a local close
        reads as EOF)."""
        try:
            return await self.stream.receive_some(want)
        except trio.BrokenResourceError as error:
            raise _reset(error) from error
        except trio.ClosedResourceError:
            return b""

    async def _send_rest(self, rest: memoryview) -> None:
        """What the socket did not take at once, through trio (it waits for room),
        with py-libp2p's mapping of its errors."""
        try:
            await self.stream.send_all(rest)
        except trio.BrokenResourceError as error:
            raise _reset(error) from error
        except trio.ClosedResourceError:
            return

    async def read(self, n: int | None = None) -> bytes:
        ahead = self._ahead
        at = self._at
        if at < len(ahead):
            if n is None or at + n >= len(ahead):
                data = ahead[at:] if at else ahead
                self._ahead = b""
                self._at = 0
                return data
            if n <= 0:
                return b""
            self._at = at + n
            return ahead[at : at + n]
        if n is not None and n <= 0:
            return b""
        want = READ_AHEAD if n is None or n < READ_AHEAD else n
        lock = self.read_lock
        if lock.locked():
            data = await super().read(want)
        else:  # the lock without its scheduler round trip; the receive makes one
            lock.acquire_nowait()
            try:
                data = await self._receive(want)
            finally:
                lock.release()
        self._metrics.bytes_in.inc(len(data))
        if n is None or len(data) <= n:
            return data
        self._ahead = data
        self._at = n
        return data[:n]


class CountingTCP(TCP):
    """TCP transport whose connections count bytes in and out."""

    def __init__(self, metrics: NodeMetrics) -> None:
        super().__init__()
        self._metrics = metrics

    async def dial(self, maddr: multiaddr.Multiaddr) -> IRawConnection:
        conn = await super().dial(maddr)
        if isinstance(conn, RawConnection) and isinstance(conn.stream, TrioTCPStream):
            conn.stream = _CountingTCPStream(conn.stream.stream, self._metrics)
        return conn

    def create_listener(self, handler_function: Callable[[Any], Awaitable[None]]) -> TCPListener:
        metrics = self._metrics

        async def counted(stream: Any) -> None:
            if isinstance(stream, TrioTCPStream):
                stream = _CountingTCPStream(stream.stream, metrics)
            await handler_function(stream)

        return TCPListener(counted)


def security_options(key_pair: KeyPair) -> dict[TProtocol, Any]:
    """Noise and nothing else."""
    noise_key = create_x25519_key_pair().private_key
    return {
        TProtocol(NOISE_PROTOCOL_ID): NoiseTransport(key_pair, noise_privkey=noise_key),
    }


def muxer_options() -> dict[TProtocol, Any]:
    """Yamux and nothing else (build_host then makes it give back window credit by
    half windows: p2pnode/muxer.py)."""
    return {TProtocol(YAMUX_PROTOCOL_ID): Yamux}


def listen_multiaddr(host: str, port: int) -> multiaddr.Multiaddr:
    return multiaddr.Multiaddr(f"/ip4/{host}/tcp/{port}")


class _NoAutoConnect(AutoConnector):
    """py-libp2p's own connection filler, switched off.

    It would dial every address in the peerstore (identify fills it with observed
    ephemeral ports too) towards its own watermarks, with no backoff of ours; the
    node's discovery keeps the connection target instead.
    """

    async def maybe_connect(self) -> None:
        return None


def connection_config(max_connections: int) -> ConnectionConfig:
    """Limits for the swarm: the node trims to `max_connections` itself; the swarm's
    pruner is only a backstop above it and its hard cap refuses inbound floods."""
    return ConnectionConfig(
        min_connections=0,
        low_watermark=0,
        high_watermark=max_connections + 16,
        max_connections=2 * max_connections + 32,
        max_connections_per_peer=2,
        dial_timeout=5.0,
    )


def build_host(
    key_pair: KeyPair,
    listen: multiaddr.Multiaddr,
    metrics: NodeMetrics,
    max_connections: int = 32,
) -> IHost:
    host = new_host(
        key_pair=key_pair,
        sec_opt=security_options(key_pair),
        muxer_opt=muxer_options(),
        listen_addrs=[listen],
        transports=[CountingTCP(metrics)],
        connection_config=connection_config(max_connections),
    )
    use_half_window_yamux(host)
    swarm = host.get_network()
    if isinstance(getattr(swarm, "auto_connector", None), AutoConnector):
        old = swarm.auto_connector  # type: ignore[attr-defined]
        swarm.auto_connector = _NoAutoConnect(  # type: ignore[attr-defined]
            swarm=swarm,  # type: ignore[arg-type]
            auto_connect_interval=old.auto_connect_interval,
        )
    return host
