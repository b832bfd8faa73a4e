"""The validation pool's child process: prepares jobs (decode, digest, recovery), nothing else.

Why a process: in a thread, decode and digest hold the interpreter lock and only
the recovery itself runs beside the event loop, so threads add little; a child
process holds its own lock. It keeps no state between requests (the replay guard
and the quotas stay with the validator, on the loop), so a child that dies loses
nothing: the pool prepares the chunk in its own thread and starts another.

Started by the pool as `python -m p2pnode.validation_worker`, it talks msgpack
frames over its stdin and stdout, each a 4-byte big-endian length and a body:

- first, from the pool: [chain_id (decimal str), domain name, domain version,
  max_clock_skew], answered with an empty frame once the child is ready;
- then requests [[topic, now, data], ...] and, for each, one answer with an entry
  per job in order: gossip.validators.PreparedFields as a 5-array, or nil when the
  step raised (a defect, logged by the pool and the message REJECTed);
- an empty frame (length 0), or the end of stdin, ends it.
"""

from __future__ import annotations

import signal
import struct
import sys
import traceback
from typing import IO, Any

import msgpack

from gossip.eip712 import SigningDomain
from gossip.validators import ValidationJob, prepare_jobs, prepared_fields

# What one frame may hold: a request of at most the pool's MAX_REQUEST messages of
# at most gossip.messages.MAX_MESSAGE_BYTES each, with room to spare.
MAX_FRAME = 8 * 1024 * 1024
FRAME_LENGTH = struct.Struct(">I")


class FrameError(Exception):
    """The other end broke the framing (a defect there, or it died mid-write)."""


def frame_of(body: bytes) -> bytes:
    return FRAME_LENGTH.pack(len(body)) + body


def body_length(head: bytes) -> int:
    """The body length a 4-byte prefix announces, within MAX_FRAME."""
    (n,) = FRAME_LENGTH.unpack(head)
    if n > MAX_FRAME:
        raise FrameError(f"frame of {n} bytes > limit {MAX_FRAME}")
    return int(n)


def write_frame(out: IO[bytes], body: bytes) -> None:
    out.write(frame_of(body))
    out.flush()


def read_frame(inp: IO[bytes]) -> bytes | None:
    """The next frame's body; None at a clean end of the stream."""
    head = inp.read(4)
    if not head:
        return None
    if len(head) != 4:
        raise FrameError("stream ended inside a length prefix")
    n = body_length(head)
    body = inp.read(n)
    if len(body) != n:
        raise FrameError(f"stream ended {n - len(body)} bytes into a {n}-byte frame")
    return body


def answer(domain: SigningDomain, max_clock_skew: float, request: bytes) -> bytes:
    jobs = [
        ValidationJob(topic, data, now)
        for topic, now, data in msgpack.unpackb(request, raw=False, use_list=False)
    ]
    out: list[Any] = []
    for job, exc in zip(jobs, prepare_jobs(jobs, domain, max_clock_skew), strict=True):
        if exc is not None:
            traceback.print_exception(exc)  # to the daemon's stderr, which the child shares
            out.append(None)
        else:
            out.append(prepared_fields(job))
    return msgpack.packb(out, use_bin_type=True)


def serve(inp: IO[bytes], out: IO[bytes]) -> None:
    first = read_frame(inp)
    if first is None:
        return
    chain_id, name, version, max_clock_skew = msgpack.unpackb(first, raw=False)
    domain = SigningDomain(chain_id=int(chain_id), name=name, version=version)
    domain.validate()
    write_frame(out, b"")
    while True:
        request = read_frame(inp)
        if not request:
            return
        write_frame(out, answer(domain, float(max_clock_skew), request))


def main() -> None:
    # Ctrl-C reaches the whole process group: the daemon shuts its children down
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        serve(sys.stdin.buffer, sys.stdout.buffer)
    except (FrameError, BrokenPipeError):
        sys.exit(1)


if __name__ == "__main__":
    main()
