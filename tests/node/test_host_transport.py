"""The node's transport over loopback: the read-ahead TCP stream hands out exactly
the bytes sent, in order, whatever sizes are asked; the half-window Yamux gives
credit back by half windows (not per read) and never stalls a sender."""

from __future__ import annotations

from typing import Any

import multiaddr
import pytest
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.stream_muxer.yamux.yamux import YamuxStream

from p2pnode.host import (
    READ_AHEAD,
    _CountingTCPStream,
    build_host,
    muxer_options,
    security_options,
)
from p2pnode.metrics import NodeMetrics
from p2pnode.muxer import HalfWindowYamux, HalfWindowYamuxStream, use_half_window_yamux

LOOPBACK = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")
PROTO = TProtocol("/sonm/test-window/1")


async def _socket_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    client = await trio.open_tcp_stream("127.0.0.1", port)
    server = await listeners[0].accept()
    await listeners[0].aclose()
    return client, server


def test_read_ahead_stream_returns_every_byte_in_order_and_counts_them() -> None:
    trio.run(_read_ahead)


async def _read_ahead() -> None:
    client, server = await _socket_pair()
    metrics = NodeMetrics()
    stream = _CountingTCPStream(client, metrics)
    sent = bytes(range(256)) * 1200  # 307,200 bytes: several reads ahead
    asks = [2, 300, 1, None, 65536, 7, 100_000, 3] * 40
    got = bytearray()

    async def send() -> None:
        for i in range(0, len(sent), 9_000):
            await server.send_all(sent[i : i + 9_000])
        await server.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        for n in asks:
            chunk = await stream.read(n)
            if n is not None:
                assert len(chunk) <= n
            assert len(stream._ahead) - stream._at <= READ_AHEAD
            if not chunk:
                break
            got += chunk
        while chunk := await stream.read(4096):
            got += chunk
    assert bytes(got) == sent
    assert metrics.registry.get_sample_value("sonm_bytes_in_total") == len(sent)
    assert await stream.read(10) == b""  # EOF stays EOF
    assert await stream.read(0) == b""
    await stream.close()


async def _window_updates(half: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int, int]:
    """Send 2,000 frames of 300 bytes and then 4 MiB on one stream between two hosts,
    with the node's half-window Yamux or py-libp2p's own; the receiver's
    WINDOW_UPDATE frames, its reads, and the bytes it got."""
    updates = [0]
    original = YamuxStream.send_window_update

    async def counted(self: YamuxStream, increment: int, skip_lock: bool = False) -> None:
        updates[0] += 1
        await original(self, increment, skip_lock)

    monkeypatch.setattr(YamuxStream, "send_window_update", counted)
    hosts = []
    for _ in range(2):
        kp = create_new_key_pair()
        host = new_host(key_pair=kp, sec_opt=security_options(kp), muxer_opt=muxer_options())
        if half:
            use_half_window_yamux(host)
        hosts.append(host)
    a, b = hosts
    small, large = b"x" * 300, b"y" * (4 << 20)
    total = 2000 * len(small) + len(large)
    received = [0, 0]
    done = trio.Event()

    async def handler(stream: Any) -> None:
        while received[0] < total:
            chunk = await stream.read(65536)
            if not chunk:
                break
            received[0] += len(chunk)
            received[1] += 1
        done.set()

    async with a.run([LOOPBACK]), b.run([LOOPBACK]):
        b.set_stream_handler(PROTO, handler)
        await a.connect(info_from_p2p_addr(b.get_addrs()[0]))
        stream = await a.new_stream(b.get_id(), [PROTO])
        with trio.fail_after(30):
            for _ in range(2000):
                await stream.write(small)
                await trio.sleep(0)  # let the reader take each frame alone
            await stream.write(large)
            await done.wait()
        await stream.close()
    return updates[0], received[1], received[0]


def test_half_window_yamux_gives_credit_by_half_windows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    updates, reads, got = trio.run(_window_updates, True, monkeypatch)
    assert got == 2000 * 300 + (4 << 20)
    assert reads >= 2000
    # 4.6 MB through a 256 KiB window, credit by halves: ~36 updates, at most one
    # per 128 KiB read (the window may grow, which needs fewer)
    assert 1 <= updates <= (got // (128 * 1024)) + 2, updates


def test_stock_yamux_answers_nearly_every_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the half-window muxer is measured against: py-libp2p's own Yamux sends
    an update for most reads (so the test above has teeth)."""
    updates, reads, got = trio.run(_window_updates, False, monkeypatch)
    assert got == 2000 * 300 + (4 << 20)
    assert updates >= reads // 2, (updates, reads)


def test_the_node_host_runs_the_half_window_muxer() -> None:
    async def main() -> None:
        a = build_host(create_new_key_pair(), LOOPBACK, NodeMetrics())
        b = build_host(create_new_key_pair(), LOOPBACK, NodeMetrics())
        async with a.run([LOOPBACK]), b.run([LOOPBACK]):
            b.set_stream_handler(PROTO, lambda stream: stream.close())
            await a.connect(info_from_p2p_addr(b.get_addrs()[0]))
            stream = await a.new_stream(b.get_id(), [PROTO])
            assert isinstance(stream.muxed_conn, HalfWindowYamux)
            assert isinstance(stream.muxed_stream, HalfWindowYamuxStream)
            await stream.close()

    trio.run(main)
