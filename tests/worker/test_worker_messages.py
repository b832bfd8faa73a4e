"""The /sonm/worker/1 messages: layout, signatures bound to the signer field, the
join's countersignature, and every malformed, oversized, unsigned, mis-signed or
re-encoded frame refused with a reason."""

from __future__ import annotations

import dataclasses
import json

import msgpack
import pytest

from gossip.eip712 import SigningDomain, address_of_key
from p2pnode.market import taskwire
from p2pnode.worker import wire as w

DOMAIN = SigningDomain(chain_id=31337)
KEY_W = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
KEY_H = bytes(range(1, 33))
WORKER, HUB = address_of_key(KEY_W), address_of_key(KEY_H)
WALLET = bytes(range(20))
HARDWARE = json.dumps({"cpu": {"cores_logical": 4}}).encode()
PAY = 3 * 10**21  # above 2**64: travels as uint256 bytes
ALL = (*w.HUB_REQUESTS, w.Offer, w.HubAnswer, *w.WORKER_ORDERS, w.WorkerAnswer)


def _join(**over: object) -> w.JoinRequest:
    base = w.JoinRequest(
        worker=WORKER,
        hub=HUB,
        wallet=WALLET,
        addr="/ip4/127.0.0.1/tcp/4002",
        hardware=HARDWARE,
        pay_per_hour=PAY,
        payout_period=3600,
        nonce=7,
        valid_until=1_000,
    )
    return w.sign(dataclasses.replace(base, **over), DOMAIN, KEY_W)  # type: ignore[no-any-return]


def _task(**over: object) -> w.TaskOrder:
    spec = taskwire.pack_spec(
        __import__("p2pnode.executor.spec", fromlist=["TaskSpec"]).TaskSpec(
            image="localhost/busybox:latest", command=("true",)
        )
    )
    base = w.TaskOrder(
        hub=HUB,
        worker=WORKER,
        deal_id=9,
        consumer=bytes(20),
        spec=spec,
        cpu_cores=2,
        ram_bytes=2**30,
        storage_bytes=0,
        network=1,
        gpu_uuids=("GPU-1", "GPU-2"),
        ends_at=2_000,
        valid_until=1_000,
    )
    return w.sign(dataclasses.replace(base, **over), DOMAIN, KEY_H)  # type: ignore[no-any-return]


def _all() -> list[w.WorkerMessage]:
    join = _join()
    return [
        w.sign(w.OfferRequest(WORKER, 1, 1_000), DOMAIN, KEY_W),
        w.sign(w.Offer(HUB, WALLET, WORKER, PAY, 3600, 1, "open"), DOMAIN, KEY_H),
        join,
        w.sign(w.LeaveNotice(WORKER, HUB, WALLET, 2, 1_000), DOMAIN, KEY_W),
        w.sign(w.HubAnswer(HUB, WORKER, w.digest(DOMAIN, join), 1, 900, "joined"), DOMAIN, KEY_H),
        _task(),
        w.sign(w.LogsOrder(HUB, WORKER, 9, 1, 10, 1_000), DOMAIN, KEY_H),
        w.sign(w.ResultsOrder(HUB, WORKER, 9, 1_000), DOMAIN, KEY_H),
        w.sign(w.StopOrder(HUB, WORKER, 9, 1_000), DOMAIN, KEY_H),
        w.sign(w.WorkerAnswer(WORKER, HUB, 9, 0, "no task for this deal"), DOMAIN, KEY_W),
    ]


@pytest.mark.parametrize("msg", _all(), ids=lambda m: type(m).__name__)
def test_round_trip_through_frames(msg: w.WorkerMessage) -> None:
    data = w.frame(msg)
    reader = w.reader()
    frames = [f for i in range(0, len(data), 5) for f in reader.feed(data[i : i + 5])]
    assert len(frames) == 1
    assert w.decode(frames[0], DOMAIN, expect=ALL) == msg


def test_layout_is_kind_version_fields_signature_with_amounts_as_bytes() -> None:
    msg = _join()
    top = msgpack.unpackb(w.encode(msg))
    assert top[:5] == [3, 1, WORKER, HUB, WALLET]
    assert top[7] == PAY.to_bytes(9, "big")  # uint256: big-endian, no leading zeros
    assert top[-1] == msg.signature and len(top) == 12


def test_the_answer_countersigns_exactly_the_request() -> None:
    join = _join()
    other = _join(pay_per_hour=PAY + 1)
    assert w.digest(DOMAIN, join) != w.digest(DOMAIN, other)
    assert w.digest(DOMAIN, join) == w.digest(DOMAIN, dataclasses.replace(join, signature=b""))


def test_a_message_signed_by_another_account_is_refused() -> None:
    forged = dataclasses.replace(_join(), signature=_join().signature)
    forged = w.sign(forged, DOMAIN, KEY_H)  # the hub signs a join "from" the worker
    with pytest.raises(w.WorkerWireError, match="not made by the message's signer"):
        w.decode(w.encode(forged), DOMAIN, expect=(w.JoinRequest,))


def test_another_chains_signature_is_refused() -> None:
    msg = _join()
    with pytest.raises(w.WorkerWireError, match="signature"):
        w.decode(w.encode(msg), SigningDomain(chain_id=1), expect=(w.JoinRequest,))


def _raw(msg: w.WorkerMessage) -> list[object]:
    return list(msgpack.unpackb(w.encode(msg)))


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"\xc1", "not valid msgpack"),
        (msgpack.packb({"a": 1}), "not valid msgpack"),  # maps are refused outright
        (msgpack.packb([3]), "an array [kind, version"),
        (msgpack.packb([99, 1, 2]), "kind: one of"),
        (msgpack.packb([5, 1, 2]), "JOIN expected here, got HUB_ANSWER"),
        (msgpack.packb([3, 2, *_raw(_join())[2:]]), "version: 1 expected"),
        (msgpack.packb(_raw(_join())[:-2] + _raw(_join())[-1:]), "has 12 items"),
        (msgpack.packb([*_raw(_join())[:-1], b""]), "signature: missing"),
        (msgpack.packb([*_raw(_join())[:-1], b"\x00" * 64]), "signature: exactly 65"),
        (msgpack.packb([*_raw(_join())[:2], b"short", *_raw(_join())[3:]]), "worker: exactly 20"),
        (
            msgpack.packb([*_raw(_join())[:7], b"\x00\x01", *_raw(_join())[8:]]),
            "leading zero",
        ),
        (msgpack.packb([*_raw(_join())[:7], b"", *_raw(_join())[8:]]), "pay_per_hour"),
        (
            msgpack.packb(
                [*_raw(_join())[:6], b"x" * (w.MAX_HARDWARE_BYTES + 1), *_raw(_join())[7:]]
            ),
            "hardware: between 2 and 16384 bytes",
        ),
        (b"\x90" * (w.MAX_JOIN_BYTES + 1), "bytes > limit"),
        (msgpack.packb([*_raw(_join())[:5], "bad\naddr", *_raw(_join())[6:]]), "control"),
    ],
)
def test_bad_join_frames_are_refused_with_the_reason(payload: bytes, why: str) -> None:
    with pytest.raises(w.WorkerWireError) as err:
        w.decode(payload, DOMAIN, expect=(w.JoinRequest,))
    assert why in str(err.value)


def test_a_non_canonical_encoding_is_refused() -> None:
    raw = _raw(_join())
    parts = [msgpack.packb(v, use_bin_type=True) for v in raw]
    parts[9] = b"\xcf" + (7).to_bytes(8, "big")  # the nonce as uint64, not a fixint
    loose = bytes([0x90 | len(raw)]) + b"".join(parts)
    assert msgpack.unpackb(loose) == raw  # the same values
    with pytest.raises(w.WorkerWireError, match="not in canonical encoding"):
        w.decode(loose, DOMAIN, expect=(w.JoinRequest,))


def test_oversized_frames_are_refused_before_they_are_buffered() -> None:
    reader = w.reader()
    with pytest.raises(taskwire.TaskWireError, match="bytes > limit"):
        reader.feed(bytes([0xFF, 0xFF, 0xFF, 0x7F]))
    big = w.encode(_join(hardware=b"{" + b" " * 2000 + b"}"))
    with pytest.raises(w.WorkerWireError, match=r"bytes > limit 1024"):
        w.decode(big, DOMAIN, expect=(w.OfferRequest, w.LeaveNotice))


def test_task_orders_check_their_limits() -> None:
    with pytest.raises(Exception, match="cpu_cores"):
        w.encode(_task(cpu_cores=0))
    with pytest.raises(Exception, match="network"):
        w.encode(_task(network=7))
    with pytest.raises(Exception, match="gpu_uuids"):
        w.encode(_task(gpu_uuids=tuple(f"GPU-{i}" for i in range(w.MAX_GPUS + 1))))


def test_unsigned_messages_are_not_sent() -> None:
    with pytest.raises(Exception, match="signed before"):
        w.encode(dataclasses.replace(_join(), signature=b""))


def test_windows_and_reasons() -> None:
    assert w.check_window(100, 101) == "request expired"
    assert "more than" in (w.check_window(1000, 100) or "")
    assert w.check_window(150, 100) is None
    assert w.reason_text("a\nb" + "x" * 300) == ("a b" + "x" * 300)[: w.MAX_REASON_BYTES]
