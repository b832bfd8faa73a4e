"""One write's worth of a peer's queue (gossip/outbound.py's drain_peer).

The driver takes a peer's output with one `drain_peer` call per stream write;
what a call takes is bounded by `max_write_messages` and `max_write_bytes`, and
what it leaves stays queued, in order, for the next call.
"""

from __future__ import annotations

import random

import pytest

from gossip.params import GossipSubParams, ParamError
from gossip.router import PROTOCOL_V12, GossipRouter
from gossip.validation import ValidationResult
from gossip.wire import RPC, Control, Message, SubOpts, decode_rpc, split_frames

T = "t"
PEER = b"peer"


def _router(**params: int) -> GossipRouter:
    r = GossipRouter(
        local_peer=b"me",
        params=GossipSubParams(**params),  # type: ignore[arg-type]
        rng=random.Random(1),
        validator=lambda topic, data, peer: ValidationResult.ACCEPT,
    )
    r.add_peer(PEER, PROTOCOL_V12, True, 0.0)
    r.receive_rpc(PEER, RPC([SubOpts(True, T)]), 0.0)
    r.drain()
    return r


def _taken(r: GossipRouter) -> tuple[list[bytes], RPC]:
    frames = r.drain_peer(PEER)
    bodies = [b for f in frames for b in split_frames(f, r.params.max_rpc_size)[0]]
    rpcs = [decode_rpc(b) for b in bodies]
    whole = RPC(
        [s for x in rpcs for s in x.subscriptions],
        [m for x in rpcs for m in x.publish],
        next((x.control for x in rpcs if x.control), None),
    )
    return [m.data for m in whole.publish], whole


def test_a_write_takes_at_most_max_write_messages_in_order_and_the_rest_stays_queued() -> None:
    r = _router(max_write_messages=4)
    for i in range(10):
        r.publish(T, b"m%d" % i, 0.0)
    batches = []
    while r.has_output_for(PEER):
        batches.append(_taken(r)[0])
    assert batches == [
        [b"m0", b"m1", b"m2", b"m3"],
        [b"m4", b"m5", b"m6", b"m7"],
        [b"m8", b"m9"],
    ]
    assert r.queued_messages(PEER) == 0
    assert r.drain_peer(PEER) == []


def test_a_write_stops_before_max_write_bytes_but_always_carries_one_message() -> None:
    r = _router(max_write_bytes=1000)
    sizes = [300, 300, 300, 300, 2500, 10]
    for i, n in enumerate(sizes):
        r.publish(T, bytes([i]) * n, 0.0)
    batches = []
    while r.has_output_for(PEER):
        batches.append([len(d) for d in _taken(r)[0]])
    # three 300-byte messages fit in 1000 bytes with their framing, a fourth does
    # not; the 2500-byte one goes alone (one message always goes), then the rest
    assert batches == [[300, 300, 300], [300], [2500], [10]]


def test_subscriptions_and_control_lead_the_first_write_of_a_bounded_queue() -> None:
    r = _router(max_write_messages=2)
    for i in range(3):
        r.publish(T, b"m%d" % i, 0.0)
    r.subscribe("other", 0.0)
    first, rpc = _taken(r)
    assert first == [b"m0", b"m1"]
    assert [s.topic for s in rpc.subscriptions] == ["other"]
    second, rpc2 = _taken(r)
    assert second == [b"m2"] and not rpc2.subscriptions
    assert not r.has_output_for(PEER)


def test_own_publishes_beyond_the_queue_bound_all_leave_over_several_writes() -> None:
    r = _router(max_queued_messages=3, max_write_messages=2)
    for i in range(7):  # own messages are queued beyond max_queued_messages
        r.publish(T, b"m%d" % i, 0.0)
    got: list[bytes] = []
    while r.has_output_for(PEER):
        got += _taken(r)[0]
    assert got == [b"m%d" % i for i in range(7)]
    assert r.metrics.queue_overflow == 0


def test_drain_of_all_peers_is_not_bounded() -> None:
    r = _router(max_write_messages=2)
    for i in range(5):
        r.publish(T, b"m%d" % i, 0.0)
    out = r.drain()
    bodies = [b for _, f in out for b in split_frames(f, r.params.max_rpc_size)[0]]
    assert [m.data for b in bodies for m in decode_rpc(b).publish] == [b"m%d" % i for i in range(5)]


@pytest.mark.parametrize("name", ["max_write_messages", "max_write_bytes"])
def test_write_bounds_below_one_are_refused_by_name(name: str) -> None:
    with pytest.raises(ParamError, match=name):
        GossipSubParams(**{name: 0}).validate()  # type: ignore[arg-type]


def _held(r: GossipRouter, mid: bytes) -> Message:
    msg = r._mcache.get(mid)
    assert msg is not None
    return msg


def test_a_queued_message_the_peer_sends_us_first_is_taken_back() -> None:
    """A busy node's write waits; a copy the peer sends meanwhile shows it has the
    message, so the queued one is not written (it would be a duplicate)."""
    r = _router()
    r.subscribe(T, 0.0)
    r.drain()
    m0 = r.publish(T, b"m0", 0.0)
    r.publish(T, b"m1", 0.0)
    r.receive_rpc(PEER, RPC(publish=[_held(r, m0)]), 0.1)
    assert r.metrics.msgs_duplicate == 1
    assert r.metrics.msgs_unqueued_held == 1
    assert _taken(r)[0] == [b"m1"]
    # once written, a later copy has nothing to take back
    r.receive_rpc(PEER, RPC(publish=[_held(r, m0)]), 0.2)
    assert r.metrics.msgs_unqueued_held == 1
    assert not r.has_output_for(PEER)


def test_an_idontwant_takes_a_queued_message_back_and_an_emptied_queue_writes_nothing() -> None:
    r = _router()
    m0 = r.publish(T, b"m0", 0.0)
    r.receive_rpc(PEER, RPC(control=Control(idontwant=[m0])), 0.1)
    assert r.metrics.msgs_unqueued_held == 1
    assert r.queued_messages(PEER) == 0
    assert r.drain_peer(PEER) == []
    assert not r.has_output_for(PEER)
