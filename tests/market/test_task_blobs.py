"""Input blobs: what a consumer serves (only what it offered, to that hub, for that
deal), what a hub takes (its caps, the slot's storage), and a transfer refused as it
happens when it is longer, shorter or other than named, over real libp2p streams."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import multiaddr
import pytest
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.peer.peerinfo import info_from_p2p_addr

from p2pnode.errors import UserError
from p2pnode.executor.spec import (
    MAX_BLOBS,
    BlobInput,
    InputFile,
    TaskSpec,
    TaskSpecError,
    load_task_file,
    task_spec_from_dict,
)
from p2pnode.host import muxer_options, security_options
from p2pnode.market.blobs import BlobCaps, BlobNotOffered, BlobOffers, Offer, blob_problem
from p2pnode.market.tasksvc import _offers_of
from p2pnode.market.transfer import ByteCounter, TransferError, receive_file, send_file

SHA_A, SHA_B = hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()
CAPS = BlobCaps(max_blob_bytes=1000, max_blobs=3, max_total_bytes=1500)


def _spec(*blobs: BlobInput, inputs: tuple[InputFile, ...] = ()) -> TaskSpec:
    return TaskSpec(image="busybox", blobs=blobs, inputs=inputs)


# -- the consumer serves only what it offered -------------------------------------------


def test_offers_answer_only_their_hub_deal_and_hashes(tmp_path: Path) -> None:
    offers = BlobOffers()
    offers.open(7, "hub-peer", {SHA_A: Offer(tmp_path / "a", 1)})
    assert offers.lookup(7, "hub-peer", SHA_A) == Offer(tmp_path / "a", 1)
    with pytest.raises(BlobNotOffered, match="names no blob"):
        offers.lookup(7, "hub-peer", SHA_B)  # a hash the task does not name
    with pytest.raises(BlobNotOffered, match="to its hub only"):
        offers.lookup(7, "another-peer", SHA_A)
    with pytest.raises(BlobNotOffered, match="no task with blobs"):
        offers.lookup(8, "hub-peer", SHA_A)  # another deal
    with pytest.raises(UserError, match="already in progress"):
        offers.open(7, "hub-peer", {})
    offers.close(7)
    with pytest.raises(BlobNotOffered, match="no task with blobs"):
        offers.lookup(7, "hub-peer", SHA_A)  # the start was answered: nothing is served
    assert len(offers) == 0


def test_open_offers_are_capped() -> None:
    offers = BlobOffers(max_deals=2)
    offers.open(1, "p", {})
    offers.open(2, "p", {})
    with pytest.raises(UserError, match="2 starts with blobs"):
        offers.open(3, "p", {})


def test_offers_need_a_local_file_of_the_named_size(tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(b"x" * 10)
    blob = BlobInput("in/data.bin", hashlib.sha256(b"x" * 10).digest(), 10)
    assert _offers_of(_spec(blob), {"in/data.bin": data}) == {blob.sha256: Offer(data, 10)}
    with pytest.raises(UserError, match="no local file"):
        _offers_of(_spec(blob), {})
    with pytest.raises(UserError, match="does not name"):
        _offers_of(_spec(blob), {"in/data.bin": data, "other": data})
    with pytest.raises(UserError, match="not a file of 11 bytes"):
        _offers_of(_spec(BlobInput("in/data.bin", blob.sha256, 11)), {"in/data.bin": data})
    with pytest.raises(UserError, match="No such file"):
        _offers_of(_spec(blob), {"in/data.bin": tmp_path / "missing"})


# -- the hub's caps ------------------------------------------------------------------


def test_hub_caps_on_size_count_total_and_storage() -> None:
    assert blob_problem(_spec(BlobInput("a", SHA_A, 1000)), CAPS, room=10_000) is None
    over = blob_problem(_spec(BlobInput("a", SHA_A, 1001)), CAPS, room=10_000)
    assert over == "blob a: 1001 bytes; this hub takes at most 1000 a blob"
    many = _spec(*(BlobInput(f"f{i}", bytes([i]) * 32, 1) for i in range(4)))
    assert blob_problem(many, CAPS, room=10_000) == "4 blobs named; this hub takes at most 3"
    total = _spec(BlobInput("a", SHA_A, 800), BlobInput("b", SHA_B, 800))
    assert "1600 bytes in all" in (blob_problem(total, CAPS, room=10_000) or "")
    # one hash named twice is fetched once: the total is of distinct blobs
    twice = _spec(BlobInput("a", SHA_A, 800), BlobInput("b", SHA_A, 800))
    assert blob_problem(twice, CAPS, room=10_000) is None
    # but both copies, and the inline inputs, go into the work dir the slot's storage caps
    assert "inputs of 1600 bytes do not fit the slot's storage (1599 bytes)" in (
        blob_problem(twice, CAPS, room=1599) or ""
    )
    inline = _spec(BlobInput("a", SHA_A, 1000), inputs=(InputFile("b", b"12"),))
    assert "inputs of 1002 bytes" in (blob_problem(inline, CAPS, room=1001) or "")


# -- blobs in the spec ----------------------------------------------------------------


def test_blobs_in_a_spec_are_checked_field_by_field() -> None:
    good = {"path": "in/x", "sha256": SHA_A.hex(), "size": 5}
    spec = task_spec_from_dict({"image": "busybox", "blobs": [good]})
    assert spec.blobs == (BlobInput("in/x", SHA_A, 5, 0o644),)
    assert task_spec_from_dict(spec.to_dict()) == spec
    bad: list[tuple[dict[str, Any], str]] = [
        ({**good, "sha256": "AB" * 32}, "blobs[0].sha256"),
        ({**good, "sha256": SHA_A.hex()[:-2]}, "blobs[0].sha256"),
        ({**good, "size": -1}, "blobs[0].size"),
        ({**good, "size": 2**41}, "blobs[0].size"),
        ({**good, "size": True}, "blobs[0].size"),
        ({**good, "path": "/etc/passwd"}, "blobs[0].path"),
        ({**good, "mode": 0o4755}, "blobs[0].mode"),
        ({**good, "url": "http://x"}, "blobs[0].url"),
        ({"path": "in/x", "size": 5}, "blobs[0].sha256"),
    ]
    for item, field in bad:
        with pytest.raises(TaskSpecError) as err:
            task_spec_from_dict({"image": "busybox", "blobs": [item]})
        assert err.value.field == field, item
    with pytest.raises(TaskSpecError) as err:
        task_spec_from_dict({"image": "busybox", "blobs": [good] * (MAX_BLOBS + 1)})
    assert err.value.field == "blobs"
    dup = {"image": "busybox", "blobs": [good], "inputs": [{"path": "in/x", "content": ""}]}
    with pytest.raises(TaskSpecError, match="duplicate path"):
        task_spec_from_dict(dup)
    under = {"image": "busybox", "blobs": [good], "inputs": [{"path": "in", "content": ""}]}
    with pytest.raises(TaskSpecError, match="under another input's path"):
        task_spec_from_dict(under)


def test_a_task_file_names_blobs_by_local_file(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(b"\x00" * 3000)
    task = tmp_path / "task.json"
    task.write_text(
        json.dumps({"image": "busybox", "blobs": [{"path": "data/big.bin", "file": "big.bin"}]})
    )
    spec, files = load_task_file(task)
    assert spec.blobs == (BlobInput("data/big.bin", hashlib.sha256(b"\x00" * 3000).digest(), 3000),)
    assert files == {"data/big.bin": tmp_path / "big.bin"}
    task.write_text(json.dumps({"image": "busybox", "blobs": [{"path": "x", "file": "gone"}]}))
    with pytest.raises(UserError, match="cannot be read"):
        load_task_file(task)


# -- transfers over a real libp2p stream ------------------------------------------------

PROTO = TProtocol("/test/blob/1")
LOOPBACK = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")


def _host() -> Any:
    kp = create_new_key_pair()
    return new_host(
        key_pair=kp,
        sec_opt=security_options(kp),
        muxer_opt=muxer_options(),
        listen_addrs=[LOOPBACK],
    )


def _transfer(tmp_path: Path, content: bytes, announced: int) -> ByteCounter:
    """`content` sent by send_file as a file; received as `announced` bytes."""
    src = tmp_path / "src"
    src.write_bytes(content)
    out: list[Any] = []

    async def main() -> None:
        a, b = _host(), _host()

        async def serve(stream: Any) -> None:
            await send_file(stream, src, len(content), timeout=10)
            await stream.close()

        a.set_stream_handler(PROTO, serve)
        async with a.run([LOOPBACK]), b.run([LOOPBACK]):
            await b.connect(info_from_p2p_addr(a.get_addrs()[0]))
            stream = await b.new_stream(a.get_id(), [PROTO])
            counter = ByteCounter(announced, "blob in/x")
            try:
                await receive_file(stream, b"", counter, io.BytesIO(), timeout=10)
            except TransferError as exc:
                out.append(exc)
            out.append(counter)
            await stream.close()

    trio.run(main)
    if isinstance(out[0], TransferError):
        raise out[0]
    return out[0]  # type: ignore[no-any-return]


def test_a_blob_arrives_whole_over_a_libp2p_stream(tmp_path: Path) -> None:
    content = bytes(range(256)) * 9000  # more than two send blocks
    counter = _transfer(tmp_path, content, len(content))
    counter.check(hashlib.sha256(content).digest())
    with pytest.raises(TransferError, match=r"sha256 [0-9a-f]{64} does not match the"):
        counter.check(hashlib.sha256(b"other").digest())


def test_more_bytes_than_named_are_refused_as_they_come(tmp_path: Path) -> None:
    with pytest.raises(TransferError, match="more than the 1000 bytes announced"):
        _transfer(tmp_path, b"x" * 5000, 1000)


def test_a_short_blob_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TransferError, match="stream ended after 5000 of 6000 bytes"):
        _transfer(tmp_path, b"x" * 5000, 6000)


def test_counter_alone() -> None:
    counter = ByteCounter(3, "blob a")
    counter.take(b"ab")
    with pytest.raises(TransferError, match="2 of 3 bytes"):
        counter.check(hashlib.sha256(b"ab").digest())
    counter.take(b"c")
    counter.check(hashlib.sha256(b"abc").digest())
    with pytest.raises(TransferError, match="more than the 3"):
        counter.take(b"d")


def test_a_receiver_that_stops_reading_is_given_up_after_the_write_deadline(
    tmp_path: Path,
) -> None:
    """A consumer gone quiet mid-download (no reset, no reads): the sender's write
    waits at most its deadline, then gives the stream and the file up."""
    src = tmp_path / "src"
    size = 64 * 2**20  # far more than the muxer's window and the sockets' buffers
    with open(src, "wb") as fh:
        fh.truncate(size)
    out: list[Any] = []

    async def main() -> None:
        a, b = _host(), _host()
        done = trio.Event()

        async def serve(stream: Any) -> None:
            t0 = trio.current_time()
            try:
                await send_file(stream, src, size, timeout=0.5)
            except trio.TooSlowError:
                out.append(trio.current_time() - t0)
            finally:
                done.set()

        a.set_stream_handler(PROTO, serve)
        async with a.run([LOOPBACK]), b.run([LOOPBACK]):
            await b.connect(info_from_p2p_addr(a.get_addrs()[0]))
            stream = await b.new_stream(a.get_id(), [PROTO])
            await stream.read(1)  # the transfer began; now it reads no more
            with trio.fail_after(20):
                await done.wait()

    trio.run(main)
    assert len(out) == 1, "send_file kept writing to a receiver that stopped reading"
    assert out[0] < 15
