"""GET /peers: the peer table, with who is connected right now."""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel

from p2pnode.api.state import NodeDep

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
    peers = [
        Peer(
            peer_id=r.peer_id,
            connected=r.peer_id in live,
            addrs=list(r.addrs),
            source=r.source,
            signed_record=r.record is not None,
            last_seen=r.last_seen,
            last_connected=r.last_connected,
            failures=r.failures,
        )
        for r in rows
        if r.peer_id in live or not connected_only
    ]
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
    return Peers(connected=len(live), known=len(rows), peers=peers)
