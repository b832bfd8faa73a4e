"""The cap on the streams peers open, over real libp2p loopback connections: one peer
cannot hold every handler (and lock the other deals' consumers out)."""

from __future__ import annotations

import logging
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.peer.peerinfo import info_from_p2p_addr

from p2pnode.framestreams import InboundStreams
from p2pnode.host import muxer_options, security_options

PROTO = TProtocol("/test/inbound/1")
LOOPBACK = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")


def _host() -> Any:
    kp = create_new_key_pair()
    return new_host(
        key_pair=kp, sec_opt=security_options(kp), muxer_opt=muxer_options(),
        listen_addrs=[LOOPBACK],
    )  # fmt: skip


async def _answer(host: Any, hub: Any) -> bytes:
    """What the hub sent on a new stream: b"held" when a handler took it; b"" when it
    was reset unread (the reset may come before the protocol's negotiation ends)."""
    try:
        with trio.fail_after(10):
            stream = await host.new_stream(hub.get_id(), [PROTO])
            await stream.write(b"hi")
            return bytes(await stream.read(4))
    except trio.TooSlowError:
        raise
    except Exception:  # the muxer's reset and the negotiation's failure are their own types
        return b""


def test_one_peer_cannot_hold_more_than_its_share_of_the_handlers() -> None:
    inbound = InboundStreams()
    release = trio.Event()
    got: dict[str, list[bytes]] = {"greedy": [], "other": []}

    async def handler(stream: Any) -> None:
        await stream.read(2)
        await stream.write(b"held")
        await release.wait()

    async def serve(stream: Any) -> None:
        await inbound.serve(
            stream, handler, cap=4, per_peer=2, counters={"bad_messages": 0},
            log=logging.getLogger("test"), what="test: stream",
        )  # fmt: skip

    async def main() -> None:
        hub, greedy, other = _host(), _host(), _host()
        hub.set_stream_handler(PROTO, serve)
        async with hub.run([LOOPBACK]), greedy.run([LOOPBACK]), other.run([LOOPBACK]):
            addr = info_from_p2p_addr(hub.get_addrs()[0])
            await greedy.connect(addr)
            await other.connect(addr)
            for _ in range(3):  # one past its share
                got["greedy"].append(await _answer(greedy, hub))
            assert inbound.open == 2
            got["other"].append(await _answer(other, hub))  # a slot is left for another peer
            assert inbound.open == 3
            release.set()
            with trio.fail_after(10):
                while inbound.open:
                    await trio.sleep(0.05)
            assert inbound.by_peer == {}  # nothing kept for peers no longer served

    trio.run(main)
    assert got["greedy"] == [b"held", b"held", b""]
    assert got["other"] == [b"held"]
    assert inbound.refused == 1


def test_the_tasks_per_peer_cap_is_checked_against_the_global_one() -> None:
    import pytest

    from p2pnode.market.tasksvc import TaskParams

    TaskParams().validate()
    assert TaskParams().max_inbound_per_peer < TaskParams().max_inbound_streams
    for bad in (0, 65):
        with pytest.raises(
            ValueError, match=r"max_inbound_per_peer = .*: allowed 1\.\.max_inbound"
        ):
            TaskParams(max_inbound_per_peer=bad).validate()
