"""GET /metrics: Prometheus text format from the daemon's own registry."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from p2pnode.api.state import NodeDep

router = APIRouter(tags=["node"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format",
            "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
        }
    },
)
async def get_metrics(state: NodeDep) -> Response:
    if state.host is not None:
        state.metrics.connections.set(len(state.host.get_connected_peers()))
    state.metrics.known_peers.set(state.storage.count_peers())
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
