"""A task's results archive over /sonm/task/1 against a plain py-libp2p stream.

Two py-libp2p hosts in one process over loopback TCP, Noise and Yamux, built as the
node builds them (p2pnode.host). The same file of `--mb` MB of random bytes goes
from one host to the other, in alternating rounds:

- ours: what the tasks service does for `sonm-p2p task results`: the consumer sends
  its request frame, the hub answers with a ResultsHeader frame (receipt and size),
  then `transfer.send_file` streams the archive; the consumer takes the header
  with the service's frame reader and `transfer.receive_file` writes the bytes to a
  part file while counting and hashing them (sha256, as it must to check the
  receipt);
- plain: a py-libp2p user's transfer: the receiver opens a stream, the sender reads
  the file in 1 MiB blocks and writes each, the receiver reads until the stream ends
  and writes to a file; no framing and no hash. Yamux as py-libp2p ships it
  (PY_YAMUX_RELEASE_ON_READ at its default), where ours runs with the node's own
  setting.

Timed: from the request to the last byte written at the receiver. Printed: MB/s of
each (median of the rounds) and ours/plain (target >= 0.7), and the median of the
rounds' paired ratios.

    python -m benchmarks.results_transfer [--mb 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

import p2pnode.host  # noqa: F401  (sets the node's Yamux tuning; the plain run undoes it)

NODE_RELEASE = os.environ.get("PY_YAMUX_RELEASE_ON_READ")

import multiaddr  # noqa: E402
from libp2p import new_host  # noqa: E402
from libp2p.abc import IHost  # noqa: E402
from libp2p.crypto.ed25519 import create_new_key_pair  # noqa: E402
from libp2p.custom_types import TProtocol  # noqa: E402
from libp2p.peer.peerinfo import info_from_p2p_addr  # noqa: E402

from p2pnode.host import muxer_options, security_options  # noqa: E402
from p2pnode.market import taskwire as w  # noqa: E402
from p2pnode.market.tasksvc import _close, _read_one  # noqa: E402
from p2pnode.market.transfer import BLOCK, ByteCounter, receive_file, send_file  # noqa: E402

LOOPBACK = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")
OURS = TProtocol(w.PROTOCOL_ID)
PLAIN = TProtocol("/bench/plain/1")
RECEIPT = b'{"bench": true}'


def _host() -> IHost:
    kp = create_new_key_pair()
    return new_host(
        key_pair=kp,
        sec_opt=security_options(kp),
        muxer_opt=muxer_options(),
        listen_addrs=[LOOPBACK],
    )


def _set_release(value: str | None) -> None:
    if value is None:
        os.environ.pop("PY_YAMUX_RELEASE_ON_READ", None)
    else:
        os.environ["PY_YAMUX_RELEASE_ON_READ"] = value


async def run(mb: int, rounds: int) -> None:
    size = mb * 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "results.tar"
        with open(src, "wb") as fh:
            for _ in range(0, size, BLOCK):
                fh.write(os.urandom(BLOCK))
            fh.truncate(size)
        dst = Path(tmp) / "got"

        async def serve_ours(stream: Any) -> None:
            try:
                await _read_one(stream, w.reader(), 10)  # the request
                await stream.write(w.frame(w.ResultsHeader(RECEIPT, size)))
                await send_file(stream, src, size, timeout=60)
            finally:
                await _close(stream)

        async def serve_plain(stream: Any) -> None:
            try:
                with open(src, "rb") as fh:
                    while block := fh.read(BLOCK):
                        await stream.write(block)
            finally:
                await stream.close()

        hub, consumer = _host(), _host()
        hub.set_stream_handler(OURS, serve_ours)
        hub.set_stream_handler(PLAIN, serve_plain)
        async with hub.run([LOOPBACK]), consumer.run([LOOPBACK]):
            await consumer.connect(info_from_p2p_addr(hub.get_addrs()[0]))
            peer = hub.get_id()

            async def ours() -> float:
                _set_release(NODE_RELEASE)
                t0 = time.perf_counter()
                stream = await consumer.new_stream(peer, [OURS])
                await stream.write(b"\x01\x00")  # a stand-in request frame, 1 byte
                reader = w.reader()
                header = w.decode(
                    await _read_one(stream, reader, 10), w.SigningDomain(chain_id=1),
                    expect=(w.ResultsHeader,),
                )  # fmt: skip
                counter = ByteCounter(header.size, "results")
                with open(dst, "wb") as fh:
                    await receive_file(stream, reader.pending(), counter, fh, timeout=10)
                elapsed = time.perf_counter() - t0
                await _close(stream)
                assert counter.got == size
                return elapsed

            async def plain() -> float:
                _set_release(None)
                t0 = time.perf_counter()
                stream = await consumer.new_stream(peer, [PLAIN])
                got = 0
                with open(dst, "wb") as fh:
                    while True:
                        try:
                            data = await stream.read()
                        except Exception:  # EOF is the muxer's own exception type
                            break
                        if not data:
                            break
                        fh.write(data)
                        got += len(data)
                elapsed = time.perf_counter() - t0
                await stream.close()
                assert got == size, got
                return elapsed

            t_ours: list[float] = []
            t_plain: list[float] = []
            for i in range(rounds):
                pair = (ours, plain) if i % 2 == 0 else (plain, ours)
                for fn in pair:
                    (t_ours if fn is ours else t_plain).append(await fn())
                print(
                    f"round {i + 1}: ours {mb / t_ours[-1]:.1f} MB/s, "
                    f"plain {mb / t_plain[-1]:.1f} MB/s"
                )
            _set_release(NODE_RELEASE)
    rate_ours = mb / statistics.median(t_ours)
    rate_plain = mb / statistics.median(t_plain)
    paired = statistics.median(p / o for o, p in zip(t_ours, t_plain, strict=True))
    print(f"{mb} MB results archive over loopback, Noise + Yamux, {rounds} rounds:")
    print(f"  ours (header frame, send_file, receive + sha256 to a file): {rate_ours:.1f} MB/s")
    print(f"  plain py-libp2p stream (write blocks, read to a file):       {rate_plain:.1f} MB/s")
    print(
        f"  ours / plain throughput (ratio of medians; target >= 0.7): {rate_ours / rate_plain:.2f}"
    )
    print(f"  median of the rounds' paired ratios (plain time / ours time): {paired:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    trio.run(run, args.mb, args.rounds)


if __name__ == "__main__":
    main()
