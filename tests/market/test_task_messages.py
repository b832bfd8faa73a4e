"""The /sonm/task/1 messages: layout, signatures bound to the signer field, the
spec's canonical packing, and every malformed, oversized, unsigned or re-encoded
frame refused with a reason."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest

from gossip.eip712 import SigningDomain, address_of_key
from p2pnode.executor.spec import BlobInput, InputFile, TaskSpec, TaskSpecError
from p2pnode.market import taskwire as w

DOMAIN = SigningDomain(chain_id=31337)
KEY_A = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
KEY_B = bytes(range(1, 33))
A, B = address_of_key(KEY_A), address_of_key(KEY_B)
SPEC = TaskSpec(
    image="localhost/busybox:latest",
    command=("sh", "-c", "echo hi > /results/out"),
    env=(("A", "1"), ("B", "two")),
    inputs=(InputFile("in/data.txt", b"\x00\x01data", 0o600),),
    blobs=(BlobInput("in/big.bin", b"\xab" * 32, 100 * 2**20, 0o600),),
)
ALL = (
    w.TaskStart,
    w.TaskAnswer,
    w.LogsRequest,
    w.ResultsRequest,
    w.LogRecord,
    w.ResultsHeader,
    w.BlobRequest,
    w.BlobHeader,
    w.BlobRefused,
)


def _start(**over: object) -> w.TaskStart:
    base = w.TaskStart(consumer=A, deal_id=5, spec=w.pack_spec(SPEC), valid_until=1_000)
    return w.sign(dataclasses.replace(base, **over), DOMAIN, KEY_A)  # type: ignore[no-any-return]


def _all() -> list[w.TaskMessage]:
    return [
        _start(),
        w.sign(w.TaskAnswer(B, 5, 1, "started"), DOMAIN, KEY_B),
        w.sign(w.TaskAnswer(B, 5, 0, "image not on the allow-list"), DOMAIN, KEY_B),
        w.sign(w.LogsRequest(A, 5, 1, 100, 1_700_000_000_000, 0, 0, 1_000), DOMAIN, KEY_A),
        w.sign(w.LogsRequest(A, 5, 1, 0, 0, 2**40, 7, 1_000), DOMAIN, KEY_A),
        w.sign(w.ResultsRequest(A, 5, 1_000), DOMAIN, KEY_A),
        w.LogRecord(int(w.LogStream.STDERR), 2**33, b"line\n" * 10),
        w.LogRecord(int(w.LogStream.STDOUT), 0, b""),
        w.ResultsHeader(b'{"x": 1}', 10_240),
        w.sign(w.BlobRequest(B, 5, b"\xab" * 32, 1_000), DOMAIN, KEY_B),
        w.BlobHeader(100 * 2**20),
        w.BlobRefused("deal 5: the task names no blob ab"),
    ]


@pytest.mark.parametrize("msg", _all(), ids=lambda m: type(m).__name__)
def test_round_trip_through_frames(msg: w.TaskMessage) -> None:
    data = w.frame(msg)
    reader = w.reader()
    frames = [f for i in range(0, len(data), 7) for f in reader.feed(data[i : i + 7])]
    assert len(frames) == 1
    assert w.decode(frames[0], DOMAIN, expect=ALL) == msg


def test_layout_is_kind_version_fields_signature() -> None:
    msg = _start()
    assert msgpack.unpackb(w.encode(msg)) == [1, 1, A, 5, msg.spec, 1_000, msg.signature]
    record = w.LogRecord(0, 12, b"x")
    assert msgpack.unpackb(w.encode(record)) == [5, 1, 0, 12, b"x"]  # no signature
    blob = w.sign(w.BlobRequest(B, 5, b"\x01" * 32, 1_000), DOMAIN, KEY_B)
    assert msgpack.unpackb(w.encode(blob)) == [7, 1, B, 5, b"\x01" * 32, 1_000, blob.signature]
    assert msgpack.unpackb(w.encode(w.BlobHeader(9))) == [8, 1, 9]
    assert msgpack.unpackb(w.encode(w.BlobRefused("no"))) == [9, 1, "no"]


def test_spec_packs_canonically_and_back() -> None:
    packed = w.pack_spec(SPEC)
    assert msgpack.unpackb(packed) == [
        "localhost/busybox:latest",
        ["sh", "-c", "echo hi > /results/out"],
        [["A", "1"], ["B", "two"]],
        "/work",
        [],
        [["in/data.txt", b"\x00\x01data", 0o600]],
        [["in/big.bin", b"\xab" * 32, 100 * 2**20, 0o600]],
    ]
    assert w.unpack_spec(packed) == SPEC


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"\xc1", "spec"),
        (msgpack.packb(["busybox"]), "spec"),
        (msgpack.packb(["busybox", [], [], "/work", [], []]), "spec"),  # no blobs array
        (msgpack.packb(["Bad Image!", [], [], "/work", [], [], []]), "image"),
        (msgpack.packb(["busybox", [], [["B", "1"], ["A", "2"]], "/work", [], [], []]), "env"),
        (msgpack.packb(["busybox", [], [], "/proc", [], [], []]), "working_dir"),
        (
            msgpack.packb(["busybox", [], [], "/work", [], [["../x", b"", 420]], []]),
            "inputs[0].path",
        ),
        (msgpack.packb(["busybox", "sh", [], "/work", [], [], []]), "command"),
        (msgpack.packb(["busybox", [], [], "/work", [], [], "x"]), "blobs"),
        (msgpack.packb(["busybox", [], [], "/work", [], [], [["a", b"\x01" * 32, 1]]]), "blobs[0]"),
        (
            msgpack.packb(["busybox", [], [], "/work", [], [], [["a", b"\x01" * 31, 1, 420]]]),
            "blobs[0].sha256",
        ),
        (
            msgpack.packb(["busybox", [], [], "/work", [], [], [["a", b"\x01" * 32, 2**41, 420]]]),
            "blobs[0].size",
        ),
        (
            msgpack.packb(
                ["busybox", [], [], "/work", [], [["a", b"", 420]], [["a", b"\x01" * 32, 1, 420]]]
            ),
            "blobs[0].path",
        ),
        (
            msgpack.packb(["busybox", [], [], "/work", [], [], [["../etc", b"\x01" * 32, 1, 420]]]),
            "blobs[0].path",
        ),
    ],
)
def test_bad_specs_name_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(TaskSpecError) as err:
        w.unpack_spec(raw)
    assert err.value.field == field


def test_non_canonical_spec_is_refused() -> None:
    packed = w.pack_spec(SPEC)
    loose = msgpack.packb(msgpack.unpackb(packed), use_bin_type=False)  # inputs as str
    with pytest.raises(TaskSpecError):
        w.unpack_spec(loose)


def test_signature_is_bound_to_the_signer_field() -> None:
    forged = w.sign(dataclasses.replace(_start(), consumer=B), DOMAIN, KEY_A)
    with pytest.raises(w.TaskWireError, match="not made by the message's signer"):
        w.decode(w.encode(forged), DOMAIN, expect=(w.TaskStart,))
    other_domain = SigningDomain(chain_id=1)
    with pytest.raises(w.TaskWireError, match="not made by the message's signer"):
        w.decode(w.encode(_start()), other_domain, expect=(w.TaskStart,))
    changed = dataclasses.replace(_start(), deal_id=6)  # the old signature kept
    with pytest.raises(w.TaskWireError, match="signer"):
        w.decode(w.encode(changed), DOMAIN, expect=(w.TaskStart,))


def test_unsigned_messages_are_neither_sent_nor_accepted() -> None:
    unsigned = w.TaskStart(consumer=A, deal_id=5, spec=b"\x90", valid_until=1)
    with pytest.raises(Exception, match="signed before it is sent"):
        w.encode(unsigned)
    body = msgpack.packb([1, 1, A, 5, b"\x90", 1, b""], use_bin_type=True)
    with pytest.raises(w.TaskWireError, match="signature: missing"):
        w.decode(body, DOMAIN, expect=(w.TaskStart,))


@pytest.mark.parametrize(
    ("payload", "expect", "reason"),
    [
        (b"\xc1", (w.TaskStart,), "not valid msgpack"),
        (msgpack.packb({"a": 1}), (w.TaskStart,), "not valid msgpack"),
        (msgpack.packb(7), (w.TaskStart,), "array"),
        (msgpack.packb([99, 1]), (w.TaskStart,), "kind: one of"),
        (msgpack.packb([10, 1]), (w.TaskStart,), "kind: one of"),
        (msgpack.packb([5, 1, 0, 0, b"x"]), (w.TaskStart,), "START expected here, got RECORD"),
        (msgpack.packb([5, 2, 0, 0, b"x"]), (w.LogRecord,), "version: 1 expected"),
        (msgpack.packb([5, 1, 0, b"x"]), (w.LogRecord,), "has 5 items, got 4"),
        (msgpack.packb([5, 1, 3, 0, b"x"], use_bin_type=True), (w.LogRecord,), "stream"),
        (msgpack.packb([5, 1, 0, -1, b"x"], use_bin_type=True), (w.LogRecord,), "offset"),
        (msgpack.packb([5, 1, 0, 0, "x"]), (w.LogRecord,), "data"),
        (msgpack.packb([6, 1, b"", 3], use_bin_type=True), (w.ResultsHeader,), "receipt"),
        (msgpack.packb([8, 1, -5]), (w.BlobHeader,), "size"),
        (msgpack.packb([9, 1, "x" * 201]), (w.BlobRefused,), "reason"),
        (
            msgpack.packb([7, 1, A, 5, b"\x01" * 31, 1, b"s" * 65], use_bin_type=True),
            (w.BlobRequest,),
            "sha256: exactly 32 bytes",
        ),
        (msgpack.packb([8, 1, 9]), (w.BlobRequest, w.TaskAnswer), "got BLOB_HEADER"),
    ],
)
def test_malformed_frames_are_refused_with_a_reason(
    payload: bytes, expect: tuple[type, ...], reason: str
) -> None:
    with pytest.raises(w.TaskWireError, match=reason):
        w.decode(payload, DOMAIN, expect=expect)


def test_each_kind_has_its_own_size_cap() -> None:
    big = w.LogRecord(0, 0, b"x" * (w.MAX_LOG_DATA + 1))
    with pytest.raises(Exception, match="data"):
        w.encode(big)
    # a request padded past its kind's cap is refused before msgpack parses it
    padded = msgpack.packb([3, 1, A, 5, 1, 0, 0, 0, 0, 1, b"s" * 2000], use_bin_type=True)
    with pytest.raises(w.TaskWireError, match="limit 1024 for LOGS"):
        w.decode(padded, DOMAIN, expect=(w.LogsRequest, w.TaskStart))
    with pytest.raises(w.TaskWireError, match="limit 1024"):
        w.decode(padded, DOMAIN, expect=(w.LogsRequest,))
    with pytest.raises(w.TaskWireError, match=r"frame: .* > limit"):
        w.reader().feed(b"\xff\xff\xff\x7f")
    with pytest.raises(w.TaskWireError, match="longer than 4 bytes"):
        w.reader().feed(b"\xff\xff\xff\xff")


def test_raw_bytes_after_a_header_stay_pending() -> None:
    header = w.frame(w.ResultsHeader(b"{}", 5))
    reader = w.reader()
    assert reader.feed(header[:3], at_most=1) == []
    [payload] = reader.feed(header[3:] + b"\x05\xff\xff\xffrest", at_most=1)
    assert w.decode(payload, DOMAIN, expect=(w.ResultsHeader,)).size == 5
    assert reader.pending() == b"\x05\xff\xff\xffrest"  # not parsed as a frame
    assert reader.pending() == b""


def test_request_window() -> None:
    assert w.check_window(100, 50.0) is None
    assert w.check_window(40, 50.0) == "request expired"
    assert "more than" in (w.check_window(500, 50.0) or "")


def test_task_id_follows_the_deal() -> None:
    assert w.task_id_of(12) == "deal-12"
