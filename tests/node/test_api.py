"""The API app without a daemon: token on every path, the node routers, metrics."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from p2pnode.api import orders, status
from p2pnode.api.app import ROUTERS, build_app
from p2pnode.api.auth import load_or_create_token, read_token
from p2pnode.api.state import NodeState
from p2pnode.config import NodeConfig
from p2pnode.metrics import NodeMetrics
from p2pnode.storage import Storage


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    storage = Storage.open_in(tmp_path)
    storage.upsert_peer("PeerA", ["/ip4/127.0.0.1/tcp/1"], source="px", record=b"r", seq=1)
    state = NodeState(config=NodeConfig(), storage=storage, metrics=NodeMetrics(), peer_id="Me")
    token = load_or_create_token(tmp_path)
    c = TestClient(build_app(state, token))
    c.headers["X-Test-Token"] = token
    return c


def _auth(c: TestClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {c.headers['X-Test-Token']}"}


def test_token_file_is_private_and_stable(tmp_path: Path) -> None:
    t1 = load_or_create_token(tmp_path)
    assert stat.S_IMODE((tmp_path / "api.token").stat().st_mode) == 0o600
    assert load_or_create_token(tmp_path) == t1 == read_token(tmp_path)
    assert len(t1) >= 40


@pytest.mark.parametrize(
    "path", ["/status", "/peers", "/metrics", "/openapi.json", "/docs", "/nope"]
)
@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic abc", "Bearer "])
def test_every_path_needs_the_token(client: TestClient, path: str, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    resp = client.get(path, headers=headers)
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_the_auth_scheme_is_case_insensitive(client: TestClient, scheme: str) -> None:
    token = client.headers["X-Test-Token"]
    resp = client.get("/status", headers={"Authorization": f"{scheme} {token}"})
    assert resp.status_code == 200
    assert client.get("/status", headers={"Authorization": f"{scheme} x{token}"}).status_code == 401


def test_status(client: TestClient) -> None:
    data = client.get("/status", headers=_auth(client)).json()
    assert data["peer_id"] == "Me" and data["role"] == "consumer"
    assert data["known_peers"] == 1 and data["connections"] == 0


def test_peers(client: TestClient) -> None:
    data = client.get("/peers", headers=_auth(client)).json()
    assert data["known"] == 1
    assert data["peers"][0]["peer_id"] == "PeerA" and data["peers"][0]["signed_record"] is True
    only = client.get("/peers?connected_only=true", headers=_auth(client)).json()
    assert only["peers"] == []
    assert client.get("/peers?limit=0", headers=_auth(client)).status_code == 422


def test_peers_known_counts_the_whole_table_not_the_page(tmp_path: Path) -> None:
    storage = Storage.open_in(tmp_path)
    for i in range(3):
        storage.upsert_peer(f"Peer{i}", [f"/ip4/127.0.0.1/tcp/{i + 1}"], source="px")
    state = NodeState(config=NodeConfig(), storage=storage, metrics=NodeMetrics(), peer_id="Me")
    token = load_or_create_token(tmp_path)
    client = TestClient(build_app(state, token))
    data = client.get("/peers?limit=1", headers={"Authorization": f"Bearer {token}"}).json()
    assert data["known"] == 3 and len(data["peers"]) == 1


def test_metrics_are_prometheus_text(client: TestClient) -> None:
    resp = client.get("/metrics", headers=_auth(client))
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    for name in (
        "sonm_connections",
        "sonm_dials_total",
        "sonm_bytes_in_total",
        "sonm_bytes_out_total",
        "sonm_known_peers 1.0",
    ):
        assert name in resp.text
    # the byte counters are plain ints exported at scrape time, typed as counters
    assert "# TYPE sonm_bytes_in_total counter" in resp.text
    assert "# TYPE sonm_bytes_out_total counter" in resp.text


def test_openapi_lists_routes_and_the_bearer_scheme(client: TestClient) -> None:
    doc = client.get("/openapi.json", headers=_auth(client)).json()
    assert {"/status", "/peers", "/metrics"} <= set(doc["paths"])
    assert "HTTPBearer" in doc["components"]["securitySchemes"]


def test_routers_compose(tmp_path: Path) -> None:
    assert orders.router in ROUTERS  # the market's slot
    extra = APIRouter()

    @extra.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hi": "there"}

    routers = [status.router, extra]
    state = NodeState(
        config=NodeConfig(), storage=Storage.open_in(tmp_path), metrics=NodeMetrics(), peer_id="Me"
    )
    c = TestClient(build_app(state, "tok", routers))
    assert c.get("/hello", headers={"Authorization": "Bearer tok"}).json() == {"hi": "there"}
    assert c.get("/status", headers={"Authorization": "Bearer tok"}).status_code == 200
    assert c.get("/peers", headers={"Authorization": "Bearer tok"}).status_code == 404


def test_bodies_over_the_cap_or_too_deep_are_refused_for_every_path(client: TestClient) -> None:
    from p2pnode.api.limits import MAX_BODY_BYTES, MAX_JSON_DEPTH

    auth = {**_auth(client), "Content-Type": "application/json"}
    for path in ("/status", "/orders", "/nope"):
        big = client.post(path, content=b"1" * (MAX_BODY_BYTES + 1), headers=auth)
        assert big.status_code == 413 and str(MAX_BODY_BYTES) in big.json()["detail"]
        deep = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)
        resp = client.post(path, content=deep, headers=auth)
        assert resp.status_code == 400 and "nested" in resp.json()["detail"]
    latin1 = client.post("/orders", content=b'{"side": "\xe9"}', headers=auth)
    assert latin1.status_code == 400 and isinstance(latin1.json()["detail"], str)
    # brackets inside strings are text, not nesting
    flat = b'{"side": "' + b"[" * 1000 + b'"}'
    assert client.post("/orders", content=flat, headers=auth).status_code == 422


def test_json_depth_counts_brackets_outside_strings() -> None:
    from p2pnode.api.limits import json_depth

    assert json_depth(b'{"a": [1, {"b": "[[[\\"]]"}]}') == 3
    assert json_depth(b"[" * 100_000) == 100_000  # no recursion, no crash
    assert json_depth(b"") == 0


@pytest.mark.parametrize(
    "method, path, allow",
    [
        ("OPTIONS", "/orders", "GET, POST"),
        ("DELETE", "/orders", "GET, POST"),
        ("PUT", "/status", "GET"),
        ("OPTIONS", "/orders/0x" + "00" * 32, "GET"),
        ("PATCH", "/orders/0x" + "00" * 32 + "/cancel", "POST"),
    ],
)
def test_405_allow_lists_every_method_of_the_path(
    client: TestClient, method: str, path: str, allow: str
) -> None:
    resp = client.request(method, path, headers=_auth(client))
    assert resp.status_code == 405 and resp.headers["allow"] == allow
    assert isinstance(resp.json()["detail"], str)


def test_openapi_states_exact_integer_bounds_and_every_status(client: TestClient) -> None:
    doc = client.get("/openapi.json", headers=_auth(client)).json()
    order_in = doc["components"]["schemas"]["OrderIn"]["properties"]
    assert order_in["cpu_cores"]["maximum"] == 2**64 - 1  # not the float 2^64
    bench = doc["components"]["schemas"]["BenchmarksIn"]["properties"]["gpu-redshift"]
    assert (bench["minimum"], bench["maximum"]) == (0, 2**64 - 1)
    assert '"ge"' not in json.dumps(doc) and '"le"' not in json.dumps(doc)  # unknown to JSON Schema
    assert order_in["properties"]["additionalProperties"] is False
    cancel = doc["paths"]["/orders/{order_id}/cancel"]["post"]
    assert {"400", "401", "403", "404", "409", "413", "422", "503"} <= set(cancel["responses"])
    assert cancel["parameters"][0]["schema"]["pattern"] == "^0[xX][0-9a-fA-F]{64}$"
    metrics = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
    hubs = doc["paths"]["/hubs"]["get"]["responses"]
    assert {"200", "503"} <= set(hubs)
    hub = doc["components"]["schemas"]["Hub"]["properties"]
    assert (hub["rating"]["minimum"], hub["rating"]["maximum"]) == (0, 10_000)  # ints, exact
    assert set(doc["components"]["schemas"]["HubTransition"]["properties"]) == {
        "at", "from", "to", "reason", "detail"
    }  # fmt: skip


def test_workers_on_a_node_without_workers_is_404(client: TestClient) -> None:
    assert (
        "404"
        in client.get("/openapi.json", headers=_auth(client)).json()["paths"]["/workers"]["get"][
            "responses"
        ]
    )
    resp = client.get("/workers", headers=_auth(client))
    assert resp.status_code == 404
    assert resp.json()["detail"] == "this node is neither a hub taking workers nor a worker"


def test_hubs_without_the_reputation_service_is_503(client: TestClient) -> None:
    resp = client.get("/hubs", headers=_auth(client))
    assert resp.status_code == 503
    assert resp.json()["detail"] == "the reputation service is not running on this node"
