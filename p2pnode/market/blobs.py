"""Input blobs: files too large for the task spec, named in it by sha256 and size.

The consumer's node offers a task's blobs only while it hands that task to the
deal's hub: `BlobOffers` holds, per deal, the hub's peer id and the local file of
each blob the spec names, and answers a hub's request only when the deal, the peer
the request came from and the hash all match an offer. Nothing else on the
consumer's disk can be asked for, by that hub or by anyone else.

The hub checks the spec's blobs against its caps (`blob_problem`) before it asks
for a byte, then fetches each over /sonm/task/1 and checks size and sha256 as the
bytes arrive (p2pnode/market/transfer.py). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from p2pnode.errors import UserError
from p2pnode.executor.spec import TaskSpec

MAX_OFFERING_DEALS = 64  # starts with blobs handed to hubs at once by one node


class BlobNotOffered(UserError):
    """A request for a blob this node does not offer to that peer for that deal."""


@dataclass(frozen=True)
class Offer:
    path: Path  # the local file
    size: int


@dataclass(frozen=True)
class BlobCaps:
    """What a hub fetches for one task: each blob, their count, all of them."""

    max_blob_bytes: int
    max_blobs: int
    max_total_bytes: int


class BlobOffers:
    """The consumer's open offers: deal -> (the hub's peer id, sha256 -> file)."""

    def __init__(self, max_deals: int = MAX_OFFERING_DEALS) -> None:
        self.max_deals = max_deals
        self._offers: dict[int, tuple[str, dict[bytes, Offer]]] = {}

    def open(self, deal_id: int, peer: str, blobs: dict[bytes, Offer]) -> None:
        if deal_id in self._offers:
            raise UserError(f"deal {deal_id}: a start with blobs is already in progress")
        if len(self._offers) >= self.max_deals:
            raise UserError(f"{self.max_deals} starts with blobs are in progress; try later")
        self._offers[deal_id] = (peer, dict(blobs))

    def close(self, deal_id: int) -> None:
        self._offers.pop(deal_id, None)

    def lookup(self, deal_id: int, peer: str, sha256: bytes) -> Offer:
        """The file to serve; BlobNotOffered saying why not."""
        entry = self._offers.get(deal_id)
        if entry is None:
            raise BlobNotOffered(f"deal {deal_id}: no task with blobs is being handed over")
        hub, blobs = entry
        if peer != hub:
            raise BlobNotOffered(f"deal {deal_id}: blobs are offered to its hub only")
        offer = blobs.get(sha256)
        if offer is None:
            raise BlobNotOffered(f"deal {deal_id}: the task names no blob {sha256.hex()}")
        return offer

    def __len__(self) -> int:
        return len(self._offers)


def blob_problem(spec: TaskSpec, caps: BlobCaps, room: int) -> str | None:
    """Why the hub will not fetch the spec's blobs; None when it will. `room` is what
    the slot's storage leaves for inputs (the work dir counts against it)."""
    if len(spec.blobs) > caps.max_blobs:
        return f"{len(spec.blobs)} blobs named; this hub takes at most {caps.max_blobs}"
    for blob in spec.blobs:
        if blob.size > caps.max_blob_bytes:
            return (
                f"blob {blob.path}: {blob.size} bytes; this hub takes at most "
                f"{caps.max_blob_bytes} a blob"
            )
    # a hash named twice is fetched once, but both copies land in the work dir
    total = spec.blob_bytes
    unique = sum({b.sha256: b.size for b in spec.blobs}.values())
    if unique > caps.max_total_bytes:
        return f"blobs of {unique} bytes in all; this hub takes at most {caps.max_total_bytes}"
    inline = sum(len(f.content) for f in spec.inputs)
    if total + inline > room:
        return f"inputs of {total + inline} bytes do not fit the slot's storage ({room} bytes)"
    return None
