"""The libp2p host as the node runs it: TCP, Noise only, Yamux only.

py-libp2p's default security list also offers plaintext, secio and TLS; a node
that accepted plaintext could be impersonated and read by anyone on the path, so
the upgrader is given exactly one security transport and one muxer. Identify and
ping come with the host by default.
"""

from __future__ import annotations

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


class _CountingTCPStream(TrioTCPStream):
    """A TCP stream that reads ahead and adds what passes through it to the node's
    byte counters.

    At most READ_AHEAD bytes are held ahead of the reader: what the peer sent and
    the connection's reader has not asked for yet, as the kernel would hold it.
    """

    def __init__(self, stream: trio.SocketStream, metrics: NodeMetrics) -> None:
        super().__init__(stream)
        self._metrics = metrics
        self._ahead = b""
        self._at = 0

    async def write(self, data: bytes) -> None:
        await super().write(data)
        self._metrics.bytes_out.inc(len(data))

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
        data = await super().read(READ_AHEAD if n is None or n < READ_AHEAD else n)
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
