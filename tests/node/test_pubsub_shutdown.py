"""A clean stop of the pubsub driver ends its streams with EOF, not a reset.

Two real py-libp2p hosts on loopback (Noise, Yamux). One runs our PubSub; the
other is a bare host that speaks /meshsub/1.1.0 by hand: it reads the stream our
node opens to it, and opens its own to our node and reads that too. When our
driver stops cleanly, both reads must end in EOF: a reset is what a peer sees
when something broke, and it logs an error for it.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

import multiaddr
import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.stream.exceptions import StreamEOF, StreamReset
from libp2p.peer.peerinfo import info_from_p2p_addr

from gossip.router import PROTOCOL_V11
from gossip.topics import ORDERS_TOPIC
from gossip.wire import RPC, SubOpts, frame
from p2pnode.host import build_host
from p2pnode.metrics import NodeMetrics
from p2pnode.pubsub import PubSub

pytestmark = pytest.mark.integration

LOOPBACK = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")


async def _read_to_end(stream: object, ends: list[str], done: trio.Event) -> None:
    try:
        while True:
            try:
                chunk = await stream.read(1 << 16)  # type: ignore[attr-defined]
            except StreamEOF:
                ends.append("eof")
                return
            except StreamReset:
                ends.append("reset")
                return
            if not chunk:
                ends.append("eof")
                return
    except Exception as exc:  # anything else is neither: name it
        ends.append(f"error: {type(exc).__name__}")
    finally:
        done.set()


def test_a_clean_stop_closes_pubsub_streams_with_eof() -> None:
    trio.run(_clean_stop)


async def _clean_stop() -> None:
    ends: list[str] = []
    inbound_done, outbound_done = trio.Event(), trio.Event()
    async with AsyncExitStack() as stack:
        ours = build_host(create_new_key_pair(), LOOPBACK, NodeMetrics())
        raw = build_host(create_new_key_pair(), LOOPBACK, NodeMetrics())
        for h in (ours, raw):
            await stack.enter_async_context(h.run([LOOPBACK]))

        async def on_stream(stream: object) -> None:  # our node's outbound stream
            await _read_to_end(stream, ends, inbound_done)

        raw.set_stream_handler(TProtocol(PROTOCOL_V11), on_stream)
        pubsub = PubSub(ours, seed=1)
        async with trio.open_nursery() as outer:
            async with trio.open_nursery() as nursery:
                await nursery.start(pubsub.run)
                pubsub.subscribe(ORDERS_TOPIC)
                await raw.connect(info_from_p2p_addr(ours.get_addrs()[0]))
                mine = await raw.new_stream(ours.get_id(), [TProtocol(PROTOCOL_V11)])
                await mine.write(frame(RPC([SubOpts(True, ORDERS_TOPIC)]).encode()))
                outer.start_soon(_read_to_end, mine, ends, outbound_done)
                raw_pb = raw.get_id().to_bytes()
                with trio.fail_after(10):
                    while raw_pb not in pubsub.router.topic_peers(ORDERS_TOPIC) or (
                        pubsub.metrics.writes < 1
                    ):
                        await trio.sleep(0.02)
                nursery.cancel_scope.cancel()  # the clean stop
            with trio.fail_after(5):
                await inbound_done.wait()
                await outbound_done.wait()
    assert sorted(ends) == ["eof", "eof"], ends
    assert pubsub.metrics.write_failures == 0
