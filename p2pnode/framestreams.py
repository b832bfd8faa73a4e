"""Frames (p2pnode/signedframes.py) over direct libp2p streams: serving the streams
peers open under a cap, reading frames with a deadline, closing without hanging.
The deal, task and worker services share these; their codecs stay sans-IO."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from p2pnode.errors import RemoteError
from p2pnode.signedframes import FrameReader


class InboundStreams:
    """The streams peers opened that are being served: beyond the cap a new one is
    reset unread, so peers cannot make us hold more than `cap` handlers; beyond
    `per_peer` from one peer likewise, so one peer cannot hold every slot and lock the
    others out."""

    def __init__(self) -> None:
        self.open = 0
        self.by_peer: dict[Any, int] = {}
        self.refused = 0  # streams reset unread at a cap

    async def serve(
        self,
        stream: Any,
        serve: Callable[[Any], Awaitable[None]],
        *,
        cap: int,
        counters: dict[str, int],
        log: logging.Logger,
        what: str,
        per_peer: int | None = None,
    ) -> None:
        """Run `serve(stream)`, then close the stream. A peer's fault (or its
        slowness) counts as a bad message and is logged at info; anything else at
        debug, as the stream failing."""
        peer = getattr(getattr(stream, "muxed_conn", None), "peer_id", None)
        held = self.by_peer.get(peer, 0)
        if self.open >= cap or (per_peer is not None and held >= per_peer):
            self.refused += 1
            await close(stream, reset=True)
            return
        self.open += 1
        self.by_peer[peer] = held + 1
        try:
            await serve(stream)
        except (RemoteError, trio.TooSlowError) as exc:
            counters["bad_messages"] += 1
            log.info("%s refused: %s", what, exc)
        except Exception as exc:
            log.debug("%s failed: %s", what, exc)
        finally:
            self.open -= 1
            left = self.by_peer[peer] - 1
            if left:
                self.by_peer[peer] = left
            else:
                del self.by_peer[peer]
            await close(stream)


async def read_frames(
    stream: Any,
    reader: FrameReader,
    timeout: float | None,
    *,
    chunk: int,
    closed: type[RemoteError],
    at_most: int | None = None,
) -> list[bytes]:
    """The next whole frames (at least one; at most `at_most`), reading `chunk` bytes
    at a time; `closed` is raised when the stream ends first, trio.TooSlowError when
    `timeout` passes first."""
    with trio.fail_after(timeout) if timeout is not None else contextlib.nullcontext():
        while True:
            data = await stream.read(chunk)
            if not data:
                raise closed("stream closed before a whole frame")
            frames = reader.feed(data, at_most=at_most)
            if frames:
                return frames


async def close(stream: Any, *, reset: bool = False) -> None:
    """Close (or reset) within a second, whatever the peer does."""
    with trio.move_on_after(1):
        with contextlib.suppress(Exception):
            await (stream.reset() if reset else stream.close())
