"""A task's output on disk: stdout and stderr in two files, capped together.

The files are what the consumer can fetch and what the receipt hashes, so the
hashes are kept as bytes are written, over exactly the stored bytes. Past the cap
further output is counted but dropped (the container keeps running: a chatty task
must not fill the supplier's disk). Followers read the files from their own
offsets and wait on an event for more, so a slow follower costs no memory here.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import trio

Stream = Literal["stdout", "stderr"]
STREAMS: tuple[Stream, Stream] = ("stdout", "stderr")
READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class LogChunk:
    stream: Stream
    data: bytes


class LogSink:
    """Written from the trio thread only (the engine pumps hand chunks over)."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._files = {s: open(self.path(s), "ab") for s in STREAMS}  # noqa: SIM115
        self._hash = {s: hashlib.sha256() for s in STREAMS}
        self._size = dict.fromkeys(STREAMS, 0)
        self.dropped = 0
        self.closed = False
        self._changed = trio.Event()
        self.reset()

    def path(self, stream: Stream) -> Path:
        return self.directory / f"{stream}.log"

    def reset(self) -> None:
        """Start over (on re-attach after a restart the engine replays the whole log)."""
        for s in STREAMS:
            self._files[s].truncate(0)
            self._files[s].seek(0)
            self._hash[s] = hashlib.sha256()
            self._size[s] = 0
        self.dropped = 0
        self.closed = False
        self._notify()

    @property
    def stored(self) -> int:
        return sum(self._size.values())

    def size(self, stream: Stream) -> int:
        return self._size[stream]

    def sha256(self, stream: Stream) -> bytes:
        return self._hash[stream].digest()

    def write(self, stream: Stream, data: bytes) -> None:
        if self.closed or not data:
            return
        room = self.max_bytes - self.stored
        if room < len(data):
            self.dropped += len(data) - max(room, 0)
            data = data[: max(room, 0)]
        if data:
            f = self._files[stream]
            f.write(data)
            f.flush()
            self._hash[stream].update(data)
            self._size[stream] += len(data)
        self._notify()

    def close(self) -> None:
        """No more output: followers drain what is stored and stop."""
        if not self.closed:
            self.closed = True
            for f in self._files.values():
                f.close()
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def follow(self, *, follow: bool = True) -> AsyncIterator[LogChunk]:
        """Everything stored so far, then (with `follow`) new output until the task ends."""
        offsets = dict.fromkeys(STREAMS, 0)
        while True:
            changed = self._changed
            progressed = False
            for s in STREAMS:
                while offsets[s] < self._size[s]:
                    data = _read_at(
                        self.path(s), offsets[s], min(READ_CHUNK, self._size[s] - offsets[s])
                    )
                    if not data:
                        break
                    offsets[s] += len(data)
                    progressed = True
                    yield LogChunk(s, data)
            if progressed:
                continue
            if not follow or self.closed:
                return
            await changed.wait()


def _read_at(path: Path, offset: int, n: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read(n)


def read_log(directory: Path, stream: Stream) -> bytes:
    """A finished task's stored stream."""
    try:
        return (directory / f"{stream}.log").read_bytes()
    except FileNotFoundError:
        return b""
