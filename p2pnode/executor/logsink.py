"""A task's output on disk: stdout and stderr in two files, capped together.

The files are what the consumer can fetch and what the receipt hashes, so the
hashes are kept as bytes are written, over exactly the stored bytes. Past the cap
further output is counted but dropped (the container keeps running: a chatty task
must not fill the supplier's disk). Followers read the files from their own
offsets and wait on an event for more, so a slow follower costs no memory here.

Next to each log, `<stream>.idx` says when its bytes were written: a 16-byte record
(unix ms, byte offset), big-endian, for the first chunk of each tenth of a second
that has output, so `--since` finds its offset to 0.1 s and the index grows with
time that has output, at most 160 bytes a second.
"""

from __future__ import annotations

import bisect
import hashlib
import struct
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import trio

Stream = Literal["stdout", "stderr"]
STREAMS: tuple[Stream, Stream] = ("stdout", "stderr")
READ_CHUNK = 64 * 1024
MARK = struct.Struct(">QQ")  # unix ms, byte offset
MARK_STEP_MS = 100


@dataclass(frozen=True)
class LogChunk:
    stream: Stream
    data: bytes
    offset: int = 0  # where `data` begins in its stream's log


class LogSink:
    """Written from the trio thread only (the engine pumps hand chunks over)."""

    def __init__(
        self, directory: Path, max_bytes: int, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.clock = clock
        directory.mkdir(parents=True, exist_ok=True)
        self._files = {s: open(self.path(s), "ab") for s in STREAMS}  # noqa: SIM115
        self._index = {s: open(index_path(directory, s), "ab") for s in STREAMS}  # noqa: SIM115
        self._bucket = dict.fromkeys(STREAMS, -1)
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
            for f in (self._files[s], self._index[s]):
                f.truncate(0)
                f.seek(0)
            self._bucket[s] = -1
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
            ms = int(self.clock() * 1000)
            if ms // MARK_STEP_MS != self._bucket[stream]:
                self._bucket[stream] = ms // MARK_STEP_MS
                self._index[stream].write(MARK.pack(ms, self._size[stream]))
                self._index[stream].flush()
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
            for f in (*self._files.values(), *self._index.values()):
                f.close()
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def follow(
        self, *, follow: bool = True, start: Mapping[Stream, int] | None = None
    ) -> AsyncIterator[LogChunk]:
        """Everything stored so far (from the `start` offsets), then (with `follow`)
        new output until the task ends."""
        offsets = {s: (start or {}).get(s, 0) for s in STREAMS}
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
                    at = offsets[s]
                    offsets[s] += len(data)
                    progressed = True
                    yield LogChunk(s, data, at)
            if progressed:
                continue
            if not follow or self.closed:
                return
            await changed.wait()


def _read_at(path: Path, offset: int, n: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read(n)


def read_log(directory: Path, stream: Stream, start: int = 0) -> bytes:
    """A finished task's stored stream, from byte `start`."""
    try:
        with open(directory / f"{stream}.log", "rb") as fh:
            fh.seek(start)
            return fh.read()
    except FileNotFoundError:
        return b""


def index_path(directory: Path, stream: Stream) -> Path:
    return directory / f"{stream}.idx"


def offset_since(directory: Path, stream: Stream, since_ms: int) -> int:
    """The offset of the first byte of `stream` written at or after `since_ms` (to
    MARK_STEP_MS): the log's size when nothing was."""
    try:
        raw = index_path(directory, stream).read_bytes()
        size = (directory / f"{stream}.log").stat().st_size
    except FileNotFoundError:
        return 0
    n = len(raw) // MARK.size
    times = [MARK.unpack_from(raw, i * MARK.size)[0] for i in range(n)]
    # marks are per tenth of a second: the bucket `since_ms` falls in counts as after it
    i = bisect.bisect_left(times, since_ms - since_ms % MARK_STEP_MS)
    if i == n:
        return size
    return min(int(MARK.unpack_from(raw, i * MARK.size)[1]), size)
