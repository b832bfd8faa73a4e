"""Raw file bytes over a `/sonm/task/1` stream: a results archive (hub to consumer)
and an input blob (consumer to hub) travel the same way, after a frame that says
how many bytes follow.

The sender reads the file in large blocks in a worker thread, one block ahead of
the stream, so the disk and the stream overlap; the receiver writes and hashes in
the trio thread (a block's sha256 update and write cost less than handing it to a
thread). `ByteCounter` is the receiver's sans-IO core: it refuses a byte past the
announced size and says whether the sha256 matches, so an oversized or tampered
transfer is stopped as it happens, not after it filled the disk.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, BinaryIO

import trio

from p2pnode.errors import RemoteError

BLOCK = 1024 * 1024  # bytes read from disk (and handed to the stream) at once
READ = 1024 * 1024  # bytes asked of the stream at once


class TransferError(RemoteError):
    """The peer sent more or fewer bytes than it announced, or bytes that do not hash
    to what was named."""


class ByteCounter:
    """Takes a transfer's bytes, at most `size`, hashing them as they come."""

    def __init__(self, size: int, what: str) -> None:
        self.size = size
        self.what = what
        self.got = 0
        self._hash = hashlib.sha256()

    def take(self, data: bytes) -> None:
        if self.got + len(data) > self.size:
            raise TransferError(f"{self.what}: more than the {self.size} bytes announced")
        self._hash.update(data)
        self.got += len(data)

    @property
    def done(self) -> bool:
        return self.got == self.size

    def digest(self) -> bytes:
        return self._hash.digest()

    def check(self, sha256: bytes) -> None:
        """TransferError unless every byte came and they hash to `sha256`."""
        if not self.done:
            raise TransferError(f"{self.what}: {self.got} of {self.size} bytes")
        got = self.digest()
        if got != sha256:
            raise TransferError(
                f"{self.what}: sha256 {got.hex()} does not match the {sha256.hex()} named"
            )


async def send_file(stream: Any, path: Path, size: int, *, timeout: float) -> int:
    """Write the first `size` bytes of `path` to the stream; how many were sent (fewer
    when the file is shorter: the receiver sees the stream end early).
    trio.TooSlowError when one block's write waits `timeout` seconds: a receiver that
    stopped reading (gone without a reset, or stalling on purpose) holds the stream
    and the open file no longer than that."""
    sent = 0
    with open(path, "rb") as fh:
        block = await trio.to_thread.run_sync(fh.read, min(BLOCK, size))
        while block:
            sent += len(block)
            left = size - sent
            if left <= 0:
                with trio.fail_after(timeout):
                    await stream.write(block)
                break
            ahead: list[bytes] = []
            with trio.fail_after(timeout):  # outside the nursery: raised bare, not grouped
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_read_into, fh, min(BLOCK, left), ahead)
                    await stream.write(block)
            block = ahead[0]
    return sent


async def _read_into(fh: BinaryIO, n: int, out: list[bytes]) -> None:
    out.append(await trio.to_thread.run_sync(fh.read, n))


async def receive_file(
    stream: Any, first: bytes, counter: ByteCounter, fh: BinaryIO, *, timeout: float
) -> None:
    """Take `counter.size` bytes into `fh`: `first` (what came with the header frame),
    then the stream's. TransferError when the stream ends early or sends too much;
    trio.TooSlowError when `timeout` seconds pass without a byte."""
    data = first
    while True:
        if data:
            counter.take(data)
            fh.write(data)
        if counter.done:
            return
        with trio.fail_after(timeout):
            try:
                data = await stream.read(READ)
            except Exception as exc:  # the muxer's EOF and reset are its own types
                raise TransferError(
                    f"{counter.what}: stream ended after {counter.got} of {counter.size} "
                    f"bytes ({type(exc).__name__})"
                ) from None
        if not data:
            raise TransferError(
                f"{counter.what}: stream ended after {counter.got} of {counter.size} bytes"
            )
