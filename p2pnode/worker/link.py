"""One request and its signed answer over `/sonm/worker/1`, as both sides use it."""

from __future__ import annotations

import logging
from typing import Any

import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr

from gossip.eip712 import SigningDomain
from p2pnode.errors import RemoteError
from p2pnode.framestreams import close as close
from p2pnode.market.tasksvc import _read_one
from p2pnode.worker import wire

log = logging.getLogger(__name__)


async def open_stream(host: Any, peer_id: str, addr: str, timeout: float) -> Any:
    """A new `/sonm/worker/1` stream to the peer (dialled at `addr` if not connected)."""
    try:
        peer = ID.from_base58(peer_id)
        maddr = Multiaddr(addr)
    except Exception as exc:  # a stored address is checked when it arrives; still
        raise RemoteError(f"cannot dial {peer_id} at {addr!r}: {exc}") from None
    try:
        with trio.fail_after(timeout):
            await host.connect(PeerInfo(peer, [maddr]))
            return await host.new_stream(peer, [TProtocol(wire.PROTOCOL_ID)])
    except Exception:
        # a connection on which no stream opens (seen when both sides dialled each
        # other at once) is dropped, so that the next attempt dials afresh
        with trio.move_on_after(2):
            try:
                await host.disconnect(peer)
            except Exception as exc:
                log.debug("worker link: dropping the connection to %s: %s", peer_id, exc)
        raise


async def read_message(
    stream: Any,
    reader: Any,
    domain: SigningDomain,
    expect: tuple[type[Any], ...],
    timeout: float,
) -> Any:
    """One frame, decoded and its signature checked (WorkerWireError otherwise)."""
    data = await _read_one(stream, reader, timeout)
    return wire.decode(data, domain, expect=expect)


async def request(
    host: Any,
    peer_id: str,
    addr: str,
    msg: Any,
    domain: SigningDomain,
    expect: tuple[type[Any], ...],
    timeout: float,
) -> Any:
    """Send one signed message, return the peer's signed answer."""
    stream = await open_stream(host, peer_id, addr, timeout)
    try:
        await stream.write(wire.frame(msg))
        return await read_message(stream, wire.reader(), domain, expect, timeout)
    except trio.TooSlowError:
        raise RemoteError(f"peer {peer_id} did not answer within {timeout} s") from None
    finally:
        await close(stream)
