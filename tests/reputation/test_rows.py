"""Local trust rows on the trust topic: what global trust is computed from.

A node publishes the peers its own evidence found honest and its own verdicts on
hubs; others keep the newest row of each truster, under a cap that favours the
trusters they trust, and rate-limit them per signer."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest

from reputation import messages
from reputation.core import ReputationCore
from reputation.errors import PeerRateLimited, TrustMessageDecodeError, TrustSignatureError
from reputation.evidence import Verdict
from reputation.messages import MAX_ROW_ENTRIES, MAX_TRUST_ROW_BYTES, KeySigner, TrustRow
from reputation.params import PollParams, ReputationParams
from tests.reputation.helpers import (
    DAY,
    DOMAIN,
    HOUR,
    HUB,
    OTHER_HUB,
    RATE,
    addr,
    key,
    node,
    pay,
    work_for,
)

NOW = 10 * DAY


def _truster(n: int) -> ReputationCore:
    """A node that found peers 50 and 51 honest (51 twice as often) and holds
    evidence: HUB paid it, OTHER_HUB did not."""
    core = node(n)
    for _ in range(2):
        core.local.record(addr(51), True)
    core.local.record(addr(50), True)
    core.local.record(addr(52), False)  # caught lying: not in the row
    for hub in (HUB, OTHER_HUB):
        core.hub_announced(hub, True, 0.0)
        work_for(core, hub, start=0.0)
    pay(core, HUB, 24 * RATE, DAY)
    core.on_timer(DAY + 2 * HOUR)
    return core


def _row(n: int, seq: int, peers: tuple[bytes, ...] = (), start: int = int(NOW)) -> bytes:
    r = TrustRow(
        KeySigner(key(n)).address, seq, peers, tuple(1000 for _ in peers), (), (), start,
        start + 600,
    )  # fmt: skip
    return messages.encode(messages.sign(r, DOMAIN, KeySigner(key(n))))


def test_a_row_carries_our_local_trust_and_our_verdicts() -> None:
    core = _truster(1)
    core.drain()  # its alert about OTHER_HUB
    row = core.publish_row(NOW)
    assert row is not None and core.counters["rows_sent"] == 1
    (frame,) = core.drain()
    back = messages.decode(frame)
    assert back == row
    assert back.trusted() == {addr(51): 65535.0, addr(50): 32768.0}  # relative to the top
    assert back.claims() == {HUB: Verdict.GOOD, OTHER_HUB: Verdict.BAD}
    later = core.make_row(NOW + 1)
    assert later is not None and later.seq > row.seq  # newer rows order after
    assert node(2).make_row(NOW) is None  # nothing to say: nothing sent


def test_the_largest_row_fits_its_cap_and_other_kinds_keep_theirs() -> None:
    top = 2**64 - 1
    peers = tuple(addr(100 + i) for i in range(MAX_ROW_ENTRIES))
    hubs = tuple(addr(200 + i) for i in range(MAX_ROW_ENTRIES))
    signer = KeySigner(key(3))
    r = TrustRow(
        signer.address, top, peers, (65535,) * MAX_ROW_ENTRIES, hubs,
        (Verdict.BAD,) * MAX_ROW_ENTRIES, top - messages.MAX_WINDOW_S, top,
    )  # fmt: skip
    data = messages.encode(messages.sign(r, DOMAIN, signer))
    assert messages.MAX_TRUST_MESSAGE_BYTES < len(data) <= MAX_TRUST_ROW_BYTES
    assert messages.decode(data) == messages.sign(r, DOMAIN, signer)
    # a question or answer padded past 512 bytes is refused even under the row cap
    q = msgpack.packb(
        [16, 1, b"\x00" * 20, b"\x00" * 20, 1, 1, 2, b"\x00" * 65, *[b"\x00" * 60] * 7]
    )
    assert messages.MAX_TRUST_MESSAGE_BYTES < len(q) <= MAX_TRUST_ROW_BYTES
    with pytest.raises(TrustMessageDecodeError) as exc:
        messages.decode(q)
    assert exc.value.field == "message" and "512" in exc.value.problem


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"peers": tuple(addr(100 + i) for i in range(13)), "weights": (1,) * 13}, "peers"),
        ({"peers": (addr(5), addr(5)), "weights": (1, 1)}, "peers"),
        ({"peers": (addr(5),), "weights": (1, 2)}, "peers"),
        ({"peers": (addr(5),), "weights": (0,)}, "weights[0]"),
        ({"peers": (b"\x01" * 19,), "weights": (1,)}, "peers[0]"),
        ({"hubs": (HUB,), "verdicts": (3,)}, "verdicts[0]"),
    ],
)
def test_a_malformed_row_is_refused_naming_its_field(change: dict[str, object], field: str) -> None:
    signer = KeySigner(key(3))
    r = TrustRow(signer.address, 1, (), (), (), (), int(NOW), int(NOW) + 600, b"\x01" * 65)
    wire = messages._to_wire(r)
    body = dict(zip(("peers", "weights", "hubs", "verdicts"), range(4, 8), strict=True))
    for name, value in change.items():
        wire[body[name]] = list(value)  # type: ignore[call-overload]
    with pytest.raises(TrustMessageDecodeError) as exc:
        messages.decode(msgpack.packb(wire, use_bin_type=True))
    assert exc.value.field == field


def test_a_row_rating_its_own_truster_is_refused() -> None:
    signer = KeySigner(key(3))
    r = TrustRow(signer.address, 1, (signer.address,), (1,), (), (), 1, 2)
    with pytest.raises(messages.FieldProblem, match="own truster"):
        r.validate()


def test_the_newest_row_of_each_truster_is_kept_and_forgeries_refused() -> None:
    core = node(1)
    first = core.admit(_row(5, 10, (addr(50),)), NOW)
    assert isinstance(first, TrustRow)
    core.deliver(first, NOW)
    older = core.admit(_row(5, 9, (addr(51),)), NOW)
    assert older is not None
    core.deliver(older, NOW)
    assert core.rows[first.truster].trusted() == {addr(50): 1000.0}
    assert core.counters["rows_stale"] == 1
    newer = core.admit(_row(5, 11, (addr(52),)), NOW)
    assert newer is not None
    core.deliver(newer, NOW)
    assert core.rows[first.truster].trusted() == {addr(52): 1000.0}
    forged = bytearray(_row(6, 1, (addr(50),)))
    forged[-2] ^= 0xFF
    with pytest.raises(TrustSignatureError):
        core.admit(bytes(forged), NOW)
    own = core.make_row(NOW)
    assert own is None  # nothing of ours; and our own row echoed back is not stored
    assert not core.accept_row(dataclasses.replace(first, truster=core.address))


def test_rows_are_rate_limited_per_truster() -> None:
    core = node(1, ReputationParams(poll=PollParams(rows_per_window=3)))
    for seq in range(1, 4):
        assert core.admit(_row(5, seq), NOW) is not None
    with pytest.raises(PeerRateLimited, match="3 rows"):
        core.admit(_row(5, 4), NOW)
    assert core.admit(_row(6, 1), NOW) is not None  # another truster has its own allowance
    assert core.admit(_row(5, 5, start=int(NOW + 3600)), NOW + 3600) is not None  # next window


def test_a_full_table_keeps_the_rows_of_the_trusters_we_trust() -> None:
    core = node(1, ReputationParams(poll=PollParams(max_rows=2)))
    trusted = [KeySigner(key(n)).address for n in (5, 6, 7)]
    core.set_global_trust({trusted[0]: 2.0, trusted[1]: 1.0, trusted[2]: 3.0})
    for n in (5, 6):
        msg = core.admit(_row(n, 1, (addr(50),)), NOW)
        assert msg is not None
        core.deliver(msg, NOW)
    # nobody trusts the sybils: however many, none replaces a row
    for n in range(20, 30):
        msg = core.admit(_row(n, 1, (addr(60),)), NOW)
        assert msg is not None
        core.deliver(msg, NOW)
    assert set(core.rows) == set(trusted[:2])
    assert core.counters["rows_dropped_full"] == 10
    # a truster we trust more takes the place of the least trusted
    msg = core.admit(_row(7, 1, (addr(50),)), NOW)
    assert msg is not None
    core.deliver(msg, NOW)
    assert set(core.rows) == {trusted[0], trusted[2]}
