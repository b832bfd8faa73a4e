"""GET /peers: the peer table, with who is connected right now."""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel

from p2pnode.api.state import NodeDep
from p2pnode.storage import PeerRow

router = APIRouter(tags=["node"])


class Peer(BaseModel):
    peer_id: str
    connected: bool
    addrs: list[str]
    source: str
    signed_record: bool
    last_seen: float
    last_connected: float | None
    failures: int


class Peers(BaseModel):
    connected: int
    known: int
    peers: list[Peer]


@router.get("/peers", response_model=Peers)
async def get_peers(
    state: NodeDep,
    connected_only: bool = Query(False, description="only peers connected right now"),
    limit: int = Query(1000, ge=1, le=10_000),
) -> Peers:
    live: set[str] = set()
    if state.host is not None:
        live = {p.to_base58() for p in state.host.get_connected_peers()}
    rows = state.storage.list_peers(limit=limit)
    known = {r.peer_id for r in rows}
    peers = [_peer(r, r.peer_id in live) for r in rows if r.peer_id in live or not connected_only]
    # connected peers beyond `limit` rows are still shown, from their own rows
    for pid in sorted(live - known):
        row = state.storage.get_peer(pid)
        if row is not None:
            known.add(pid)
            peers.append(_peer(row, True))
    # connected peers not yet in the table (inbound, record not exchanged yet)
    for pid in sorted(live - known):
        peers.append(
            Peer(
                peer_id=pid,
                connected=True,
                addrs=[],
                source="inbound",
                signed_record=False,
                last_seen=0.0,
                last_connected=None,
                failures=0,
            )
        )
    peers.sort(key=lambda p: (not p.connected, p.peer_id))
    return Peers(connected=len(live), known=state.storage.count_peers(), peers=peers)


def _peer(row: PeerRow, connected: bool) -> Peer:
    return Peer(
        peer_id=row.peer_id,
        connected=connected,
        addrs=list(row.addrs),
        source=row.source,
        signed_record=row.record is not None,
        last_seen=row.last_seen,
        last_connected=row.last_connected,
        failures=row.failures,
    )
