"""A hostile peer against a real node, over loopback with real py-libp2p hosts.

The node runs our router through the trio driver with scoring on, as the daemon
runs it; an honest node publishes to it. The attacker is a bare host speaking
/meshsub/1.1.0 with our codec: it spams IHAVEs naming ids that do not exist,
then floods subscriptions to topic names of half a megabyte and to unknown
topics. Checked while it does: the node never tracks more of the attacker's
topics than its budget, holds no name longer than the cap, keeps its IWANTs and
promises within the per-heartbeat limits, its RSS stays bounded, it cuts the
attacker off, and every honest message is delivered. After the attacker is gone
the router's tables are back to their size before it came.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import multiaddr
import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.peer.peerinfo import info_from_p2p_addr

from gossip.events import Delivered
from gossip.router import PROTOCOL_V11, interned_topic_sets
from gossip.score_params import default_peer_score_params, default_thresholds
from gossip.topics import ORDERS_TOPIC
from gossip.wire import RPC, Control, SubOpts, frame
from p2pnode.host import build_host
from p2pnode.metrics import NodeMetrics
from p2pnode.pubsub import PubSub

pytestmark = pytest.mark.integration

LOOPBACK = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")
HONEST_MESSAGES = 30
RSS_BOUND = 64 << 20  # bytes the node may grow by under the attack


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def _attack_frames() -> list[bytes]:
    frames = []
    # IHAVE spam: 60 RPCs of 1000 made-up ids each for the topic the node joined
    for k in range(60):
        ids = [b"%d-%d" % (k, i) + bytes(24) for i in range(1000)]
        frames.append(frame(RPC(control=Control(ihave=[(ORDERS_TOPIC, ids)])).encode()))
    # names of 512 KiB: 16 MiB through the wire, if the node listens that long
    for k in range(32):
        frames.append(frame(RPC([SubOpts(True, f"{k}".ljust(512 << 10, "x"))]).encode()))
    # unknown topics: 40 RPCs of 50 subscriptions each
    for k in range(40):
        subs = [SubOpts(True, f"/junk/{k}/{i}") for i in range(50)]
        frames.append(frame(RPC(subscriptions=subs).encode()))
    return frames


def test_hostile_peer_floods_subscriptions_and_ihaves() -> None:
    trio.run(_hostile)


async def _hostile() -> None:
    got: list[Delivered] = []
    async with AsyncExitStack() as stack:
        node_h, honest_h, evil_h = (
            build_host(create_new_key_pair(), LOOPBACK, NodeMetrics()) for _ in range(3)
        )
        for h in (node_h, honest_h, evil_h):
            await stack.enter_async_context(h.run([LOOPBACK]))

        async def swallow(stream: object) -> None:  # the attacker reads what we send
            try:
                while await stream.read(1 << 16):  # type: ignore[attr-defined]
                    pass
            except Exception:
                return

        evil_h.set_stream_handler(TProtocol(PROTOCOL_V11), swallow)
        node = PubSub(
            node_h,
            score_params=default_peer_score_params(),
            thresholds=default_thresholds(),
            on_delivery=got.append,
            seed=1,
        )
        honest = PubSub(honest_h, seed=2)
        router = node.router
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            await nursery.start(honest.run)
            node.subscribe(ORDERS_TOPIC)
            honest.subscribe(ORDERS_TOPIC)
            await honest_h.connect(info_from_p2p_addr(node_h.get_addrs()[0]))
            honest_pb = honest_h.get_id().to_bytes()
            with trio.fail_after(10):
                while honest_pb not in router.mesh_peers(ORDERS_TOPIC):
                    await trio.sleep(0.05)
            frames = _attack_frames()
            base_topics = len(router._topic_peers)
            base_sets = interned_topic_sets()
            base_rss = _rss()

            evil_pb = evil_h.get_id().to_bytes()
            await evil_h.connect(info_from_p2p_addr(node_h.get_addrs()[0]))
            stream = await evil_h.new_stream(node_h.get_id(), [TProtocol(PROTOCOL_V11)])
            await stream.write(frame(RPC([SubOpts(True, ORDERS_TOPIC)]).encode()))

            peak = {"topics": 0, "rss": 0, "promises": 0}
            stop = trio.Event()

            async def watch() -> None:
                while not stop.is_set():
                    peak["topics"] = max(peak["topics"], len(router._topic_peers))
                    peak["rss"] = max(peak["rss"], _rss() - base_rss)
                    pr = router._promises
                    peak["promises"] = max(peak["promises"], len(pr) if pr else 0)
                    await trio.sleep(0.01)

            async def flood() -> None:
                try:
                    for f in frames:
                        await stream.write(f)
                except Exception:
                    pass  # cut off: what the node should do

            async def publish_honestly() -> None:
                for i in range(HONEST_MESSAGES):
                    await honest.publish(ORDERS_TOPIC, b"honest order %d" % i)
                    await trio.sleep(0.1)

            nursery.start_soon(watch)
            async with trio.open_nursery() as attack:
                attack.start_soon(flood)
                attack.start_soon(publish_honestly)
            with trio.fail_after(10):
                while len([d for d in got if d.received_from == honest_pb]) < HONEST_MESSAGES:
                    await trio.sleep(0.05)
                while router.has_peer(evil_pb):
                    await trio.sleep(0.05)
            await trio.sleep(0.2)
            stop.set()

            m = router.metrics
            params = router.params
            # the attacker was refused, penalised and cut off
            assert m.subs_refused > 0
            assert m.ihave_ignored > 0
            assert router.score_of(evil_pb, trio.current_time()) < (
                default_thresholds().graylist_threshold
            )
            assert not router.has_peer(evil_pb)
            # bounded while it lasted
            assert peak["topics"] <= base_topics + params.max_unknown_topics_per_peer
            assert m.iwant_sent <= params.max_ihave_messages * (m.heartbeats + 1)
            assert peak["promises"] <= params.max_ihave_messages * (m.heartbeats + 1)
            assert peak["rss"] < RSS_BOUND, f"RSS grew {peak['rss'] >> 20} MiB"
            # honest delivery 100%, each message once
            honest_got = sorted(d.data for d in got if d.received_from == honest_pb)
            assert honest_got == sorted(b"honest order %d" % i for i in range(HONEST_MESSAGES))
            # what it made us hold is gone
            assert len(router._topic_peers) == base_topics
            assert interned_topic_sets() <= base_sets
            assert all(len(t) <= params.max_topic_length for t in router._topic_peers)
            nursery.cancel_scope.cancel()
