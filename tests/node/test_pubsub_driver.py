"""The trio driver's stream loops (p2pnode/pubsub.py) over in-memory streams.

The reader and the writer of PubSub are run against one end of a
`trio.testing.memory_stream_pair`, the test playing the remote peer on the other
end, with a real router behind the driver. What is checked is the driver's own
job: frames split anywhere across reads reach the router whole, everything
queued for a peer leaves in one write, an oversized frame resets the stream and
counts against the peer, and a clean end (EOF from the peer, the peer dropped)
closes the stream instead of resetting it. (The same loops over real py-libp2p
hosts are in tests/node/test_pubsub_shutdown.py and tests/integration.)
"""

from __future__ import annotations

import random
from typing import Any, cast

import pytest
import trio
import trio.testing
from libp2p.abc import IHost

from gossip.events import Delivered
from gossip.params import GossipSubParams
from gossip.router import PROTOCOL_V12, GossipRouter
from gossip.validation import ValidationResult
from gossip.wire import RPC, Message, SubOpts, decode_rpc, frame, split_frames
from p2pnode.pubsub import _MAX_WRITE, PubSub

T = "t"
PEER = b"remote"


class _PeerId:
    def __init__(self, raw: bytes) -> None:
        self._raw = raw

    def to_bytes(self) -> bytes:
        return self._raw


class _Conn:
    def __init__(self, peer: bytes) -> None:
        self.peer_id = _PeerId(peer)


class MemStream:
    """Our end of a memory stream pair with the calls the driver makes on a
    libp2p stream; how it was ended is recorded ("close" or "reset")."""

    def __init__(self, end: trio.StapledStream[Any, Any], peer: bytes = PEER) -> None:
        self._end = end
        self.muxed_conn = _Conn(peer)
        self.ended: str | None = None

    async def read(self, n: int) -> bytes:
        return bytes(await self._end.receive_some(n))

    async def write(self, data: bytes) -> None:
        await self._end.send_all(data)

    async def close(self) -> None:
        self.ended = self.ended or "close"
        await self._end.send_stream.aclose()

    async def reset(self) -> None:
        self.ended = self.ended or "reset"
        await self._end.aclose()

    def get_protocol(self) -> str:
        return PROTOCOL_V12

    def get_remote_address(self) -> tuple[str, int]:
        return ("10.0.0.2", 4001)


def _driver(**params: Any) -> tuple[PubSub, list[Delivered]]:
    got: list[Delivered] = []
    router = GossipRouter(
        local_peer=b"me",
        params=GossipSubParams(**params),
        rng=random.Random(1),
        validator=lambda topic, data, peer: ValidationResult.ACCEPT,
    )
    # the stream loops never touch the host; run() and dialling do (tested elsewhere)
    return PubSub(cast(IHost, None), router=router, on_delivery=got.append), got


def test_frames_split_anywhere_reach_the_router_whole_and_eof_closes() -> None:
    async def main() -> None:
        pubsub, got = _driver()
        pubsub.router.subscribe(T, trio.current_time())
        ours, theirs = trio.testing.memory_stream_pair()
        stream = MemStream(ours)
        wire = frame(RPC([SubOpts(True, T)]).encode()) + b"".join(
            frame(RPC(publish=[Message(T, b"m%d" % i + bytes(300))]).encode()) for i in range(3)
        )
        assert pubsub.inbound_streams() == 0
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pubsub._handle_inbound, stream)
            for i in range(0, len(wire), 7):  # 7-byte pieces: every frame split
                await theirs.send_all(wire[i : i + 7])
                await trio.testing.wait_all_tasks_blocked()
            assert pubsub.inbound_streams() == 1  # being read
            await theirs.send_stream.aclose()  # the peer ends its stream
        assert pubsub.inbound_streams() == 0
        assert PEER in pubsub.router.topic_peers(T)
        assert [d.data[:2] for d in got] == [b"m0", b"m1", b"m2"]
        assert pubsub.router.metrics.malformed_frames == 0
        assert stream.ended == "close"
        assert await theirs.receive_some(10) == b""  # the peer reads a clean EOF

    trio.run(main)


def test_an_oversized_frame_resets_the_stream_and_counts_against_the_peer() -> None:
    async def main() -> None:
        pubsub, got = _driver(max_rpc_size=1024)
        ours, theirs = trio.testing.memory_stream_pair()
        stream = MemStream(ours)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pubsub._handle_inbound, stream)
            await theirs.send_all(frame(bytes(2048)))
        assert stream.ended == "reset"
        assert pubsub.metrics.oversized_frames == 1
        assert pubsub.router.metrics.malformed_frames == 1
        assert not got

    trio.run(main)


def test_everything_queued_leaves_in_one_write_and_a_dropped_peer_gets_eof() -> None:
    async def main() -> None:
        pubsub, _ = _driver()
        router = pubsub.router
        now = trio.current_time()
        router.add_peer(PEER, PROTOCOL_V12, True, now)
        router.receive_rpc(PEER, RPC([SubOpts(True, T)]), now)
        router.drain()  # nothing queued yet for PEER but what follows
        for i in range(5):
            router.publish(T, b"p%d" % i, now)
        ours, theirs = trio.testing.memory_stream_pair()
        stream = MemStream(ours)
        pubsub._outbound[PEER] = gen = 1
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pubsub._writer, PEER, stream, gen)
            await trio.testing.wait_all_tasks_blocked()
            data = b""
            while True:
                bodies, used = split_frames(data, router.params.max_rpc_size)
                if bodies and used == len(data):
                    break
                data += await theirs.receive_some(1 << 16)
            assert pubsub.metrics.writes == 1
            msgs = [m.data for b in bodies for m in decode_rpc(b).publish]
            assert msgs == [b"p%d" % i for i in range(5)]
            pubsub._drop_peer(PEER)  # the peer left: the writer ends cleanly
        assert stream.ended == "close"
        assert await theirs.receive_some(10) == b""
        assert pubsub.metrics.write_failures == 0

    trio.run(main)


def test_a_failed_write_resets_the_stream() -> None:
    async def main() -> None:
        pubsub, _ = _driver()
        router = pubsub.router
        now = trio.current_time()
        router.add_peer(PEER, PROTOCOL_V12, True, now)
        router.receive_rpc(PEER, RPC([SubOpts(True, T)]), now)
        router.publish(T, b"x", now)
        ours, theirs = trio.testing.memory_stream_pair()
        await theirs.aclose()  # the peer is gone: our write fails
        stream = MemStream(ours)
        pubsub._outbound[PEER] = 1
        await pubsub._writer(PEER, stream, 1)
        assert stream.ended == "reset"
        assert pubsub.metrics.write_failures == 1
        assert not router.has_peer(PEER)  # forgotten, so a redial starts fresh

    trio.run(main)


class GatedStream(MemStream):
    """A stream whose every write stays in flight until the test lets it finish:
    the test sees what each write carried, and decides when the next may start."""

    def __init__(self, end: trio.StapledStream[Any, Any]) -> None:
        super().__init__(end)
        self.writes: list[bytes] = []
        self.started = trio.Event()
        self.release = trio.Event()

    async def write(self, data: bytes) -> None:
        self.writes.append(data)
        self.started.set()
        await self.release.wait()
        self.release = trio.Event()


def _messages(data: bytes) -> list[bytes]:
    bodies, used = split_frames(data, 1 << 20)
    assert used == len(data)
    return [m.data for b in bodies for m in decode_rpc(b).publish]


def _peer_ready(pubsub: PubSub) -> None:
    router = pubsub.router
    now = trio.current_time()
    router.add_peer(PEER, PROTOCOL_V12, True, now)
    router.receive_rpc(PEER, RPC([SubOpts(True, T)]), now)
    router.drain()


def test_an_idle_stream_is_written_at_once_and_a_busy_one_coalesces() -> None:
    """Adaptive coalescing: nothing waits on a timer. A message to an idle peer is
    written in the same instant of the (mock) clock it was published; what is
    published while that write is in flight leaves together in the next write."""

    async def main() -> None:
        pubsub, _ = _driver()
        _peer_ready(pubsub)
        ours, _theirs = trio.testing.memory_stream_pair()
        stream = GatedStream(ours)
        pubsub._outbound[PEER] = gen = 1
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pubsub._writer, PEER, stream, gen)
            await trio.testing.wait_all_tasks_blocked()
            t0 = trio.current_time()
            await pubsub.publish(T, b"first")
            await stream.started.wait()
            assert trio.current_time() == t0  # no hold: written at once
            assert [_messages(w) for w in stream.writes] == [[b"first"]]
            # the write is in flight: these queue behind it
            for i in range(6):
                await pubsub.publish(T, b"m%d" % i)
            await trio.testing.wait_all_tasks_blocked()
            assert len(stream.writes) == 1
            stream.started = trio.Event()
            stream.release.set()
            await stream.started.wait()
            assert _messages(stream.writes[1]) == [b"m%d" % i for i in range(6)]
            stream.release.set()
            await trio.testing.wait_all_tasks_blocked()
            assert len(stream.writes) == 2  # nothing more queued: the writer sleeps
            assert trio.current_time() == t0
            assert pubsub.metrics.writes == 2
            # idle again: the next message goes at once, alone
            stream.started = trio.Event()
            await pubsub.publish(T, b"later")
            await stream.started.wait()
            assert _messages(stream.writes[2]) == [b"later"]
            stream.release.set()
            pubsub._drop_peer(PEER)
        assert stream.ended == "close"

    trio.run(main, clock=trio.testing.MockClock())


def test_what_queues_during_a_write_leaves_in_writes_bounded_by_depth() -> None:
    async def main() -> None:
        pubsub, _ = _driver(max_write_messages=4)
        _peer_ready(pubsub)
        ours, _theirs = trio.testing.memory_stream_pair()
        stream = GatedStream(ours)
        pubsub._outbound[PEER] = gen = 1
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pubsub._writer, PEER, stream, gen)
            await trio.testing.wait_all_tasks_blocked()
            await pubsub.publish(T, b"first")
            await stream.started.wait()
            for i in range(10):
                await pubsub.publish(T, b"m%d" % i)
            for _ in range(3):
                stream.started = trio.Event()
                stream.release.set()
                await stream.started.wait()
            stream.release.set()
            await trio.testing.wait_all_tasks_blocked()
            assert [_messages(w) for w in stream.writes] == [
                [b"first"],
                [b"m0", b"m1", b"m2", b"m3"],
                [b"m4", b"m5", b"m6", b"m7"],
                [b"m8", b"m9"],
            ]
            pubsub._drop_peer(PEER)

    trio.run(main, clock=trio.testing.MockClock())


def test_a_writer_lets_a_busy_loop_queue_more_before_it_writes() -> None:
    """While another task keeps queueing for the peer (here one message per
    scheduler round) an idle writer waits round by round, so the burst leaves in
    one write; the mock clock shows no time passed."""

    async def main() -> None:
        pubsub, _ = _driver()
        _peer_ready(pubsub)
        ours, _theirs = trio.testing.memory_stream_pair()
        stream = GatedStream(ours)
        pubsub._outbound[PEER] = gen = 1

        async def producer() -> None:
            for i in range(5):
                await pubsub.publish(T, b"m%d" % i)  # each publish yields once

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pubsub._writer, PEER, stream, gen)
            await trio.testing.wait_all_tasks_blocked()
            t0 = trio.current_time()
            nursery.start_soon(producer)
            await stream.started.wait()
            stream.release.set()
            await trio.testing.wait_all_tasks_blocked()
            assert [_messages(w) for w in stream.writes] == [[b"m%d" % i for i in range(5)]]
            assert trio.current_time() == t0
            pubsub._drop_peer(PEER)

    trio.run(main, clock=trio.testing.MockClock())


def test_a_write_over_one_noise_message_is_cut_into_writes_that_each_fit_one() -> None:
    """py-libp2p's Yamux cuts a large write at 65524 bytes and Noise splits that
    frame in two; the driver cuts first, so each write is one Yamux frame in one
    Noise message, and the bytes are the frames unchanged."""

    async def main() -> None:
        pubsub, _ = _driver(max_write_bytes=1 << 20)
        _peer_ready(pubsub)
        for i in range(5):
            await pubsub.publish(T, bytes([i]) * 30000)
        ours, _theirs = trio.testing.memory_stream_pair()
        stream = GatedStream(ours)
        pubsub._outbound[PEER] = gen = 1
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pubsub._writer, PEER, stream, gen)
            for _ in range(3):
                await stream.started.wait()
                stream.started = trio.Event()
                stream.release.set()
            await trio.testing.wait_all_tasks_blocked()
            assert [len(w) for w in stream.writes[:2]] == [_MAX_WRITE] * 2
            assert len(stream.writes) == 3 and len(stream.writes[2]) <= _MAX_WRITE
            assert _messages(b"".join(stream.writes)) == [bytes([i]) * 30000 for i in range(5)]
            assert pubsub.metrics.writes == 1  # one turn of the writer
            pubsub._drop_peer(PEER)

    trio.run(main, clock=trio.testing.MockClock())


class RecordingStream(MemStream):
    """A stream that records what each write carried and completes it at once."""

    def __init__(self, end: trio.StapledStream[Any, Any]) -> None:
        super().__init__(end)
        self.writes: list[bytes] = []

    async def write(self, data: bytes) -> None:
        self.writes.append(data)


def _long_queue_write(busy: bool, monkeypatch: pytest.MonkeyPatch) -> list[list[bytes]]:
    """70 messages queued (a long queue: over a quarter of a full frame), one more
    queued 8 rounds later; `busy` stands for what trio's statistics say of the
    loop (other tasks ready to run), which a test cannot pin round by round."""

    async def main() -> list[list[bytes]]:
        pubsub, _ = _driver()
        monkeypatch.setattr(pubsub, "_busy", lambda: busy)
        _peer_ready(pubsub)
        ours, _theirs = trio.testing.memory_stream_pair()
        stream = RecordingStream(ours)
        pubsub._outbound[PEER] = gen = 1

        async def late() -> None:
            for _ in range(8):
                await trio.lowlevel.checkpoint()
            await pubsub.publish(T, b"late")

        async with trio.open_nursery() as nursery:
            for i in range(70):
                pubsub.router.publish(T, b"m%d" % i, trio.current_time())
            nursery.start_soon(late)
            nursery.start_soon(pubsub._writer, PEER, stream, gen)
            await trio.testing.wait_all_tasks_blocked()
            pubsub._drop_peer(PEER)
        return [_messages(w) for w in stream.writes]

    return trio.run(main, clock=trio.testing.MockClock())


def test_a_long_queue_waits_for_more_while_the_loop_is_busy_and_not_when_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only on a busy loop does a long queue wait past the producers' pause (for a
    full frame, at most _BUSY_ROUNDS rounds); an idle loop writes it after two
    quiet rounds, as it does a short one."""
    idle = _long_queue_write(False, monkeypatch)
    assert len(idle[0]) == 70 and idle[1] == [b"late"]
    busy = _long_queue_write(True, monkeypatch)
    assert len(busy) == 1 and busy[0][-1] == b"late" and len(busy[0]) == 71
