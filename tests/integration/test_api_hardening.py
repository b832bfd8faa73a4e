"""The local API of a real `sonm-p2p run` process against hostile local input.

The node has an unlocked account (so POST /orders parses and signs), as an operator
runs it. Each attack must get a clear 4xx and leave the node answering, its memory
bounded.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from p2pnode.api.limits import MAX_BODY_BYTES
from p2pnode.cli.demo import start_node, wait_ready

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One daemon for the module: each test leaves it running, which is the point."""
    node = start_node("trader", tmp_path_factory.mktemp("api"), "seed", [], trader=True)
    try:
        info = wait_ready(node, time.monotonic() + 60)
        token = (node.data_dir / "api.token").read_text().strip()
        auth = {"Authorization": f"Bearer {token}"}
        yield {"node": node, "url": info["api_url"], "auth": auth}
    finally:
        if node.proc.poll() is None:
            node.proc.send_signal(signal.SIGKILL)
        node.proc.wait(10)


def _alive(t: dict[str, Any]) -> None:
    assert t["node"].proc.poll() is None, t["node"].log_path.read_text()[-2000:]
    resp = httpx.get(t["url"] + "/status", headers=t["auth"], timeout=5)
    assert resp.status_code == 200


def test_deeply_nested_json_is_400_and_the_node_lives(trader: dict[str, Any]) -> None:
    for body in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 20_000 + b"1" + b"}" * 20_000):
        body = body[:MAX_BODY_BYTES]  # under the size cap, so depth is what refuses it
        resp = httpx.post(
            trader["url"] + "/orders",
            content=body,
            headers={**trader["auth"], "Content-Type": "application/json"},
            timeout=10,
        )
        assert resp.status_code == 400 and "nested" in resp.json()["detail"], resp.text
    _alive(trader)


def _raw_request(url: str, head: str, chunks: int, chunk: bytes) -> bytes:
    """Send `head`, then up to `chunks` chunks of a chunked body; return what came back.
    The server may answer and close before the whole body is sent."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(head.encode())
        try:
            for _ in range(chunks):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sock.sendall(b"0\r\n\r\n")
        except OSError:  # answered and closed mid-body: what we want
            pass
        answer = b""
        try:
            while data := sock.recv(65536):
                answer += data
        except OSError:
            pass
        return answer


def test_big_bodies_are_413_without_being_read(trader: dict[str, Any]) -> None:
    """Ten concurrent 100 MB bodies took the node to 1.6 GB of RSS: each is refused
    after at most the cap, declared (Content-Length) or chunked."""
    url, token = trader["url"], trader["auth"]["Authorization"]
    proc = psutil.Process(trader["node"].proc.pid)
    _alive(trader)
    rss_before = proc.memory_info().rss
    declared = httpx.post(
        url + "/orders",
        content=b"x" * (MAX_BODY_BYTES + 1),
        headers={**trader["auth"], "Content-Type": "application/json"},
        timeout=10,
    )
    assert declared.status_code == 413 and str(MAX_BODY_BYTES) in declared.json()["detail"]
    head = (
        "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: {token}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    answers: list[bytes] = []
    chunk = b" " * (1 << 20)  # 100 chunks of 1 MiB = 100 MiB each, if the node read them
    threads = [
        threading.Thread(target=lambda: answers.append(_raw_request(url, head, 100, chunk)))
        for _ in range(10)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert len(answers) == 10
    assert all(a.startswith(b"HTTP/1.1 413") for a in answers), [a[:80] for a in answers]
    grown = proc.memory_info().rss - rss_before
    print(f"RSS grew {grown / 2**20:.1f} MiB over ten 100 MiB chunked bodies")
    assert grown < 64 * 2**20
    _alive(trader)


def test_lowercase_bearer_and_non_finite_numbers(trader: dict[str, Any]) -> None:
    token = trader["auth"]["Authorization"].split()[1]
    ok = httpx.get(trader["url"] + "/status", headers={"Authorization": f"bearer {token}"})
    assert ok.status_code == 200
    resp = httpx.post(
        trader["url"] + "/orders",
        content=b'{"side":"ask","price_per_hour":"1","duration":NaN}',
        headers={**trader["auth"], "Content-Type": "application/json"},
    )
    assert resp.status_code == 422 and isinstance(resp.json()["detail"], list), resp.text
    _alive(trader)


# Every warning but "missing test data": this node has no deals, slots or tasks, so
# each id it is asked about is a 404, which is what its document promises.
WARNINGS = (
    "missing_auth,base_url_mismatch,validation_mismatch,missing_deserializer,"
    "unused_openapi_auth,unsupported_regex,method_not_allowed,constants_extraction,"
    "unmatched_filter,unresolvable_reference,low_valid_rate,rate_limited,"
    "dictionary_mismatch,timeout_units"
)


@pytest.mark.slow
def test_the_node_keeps_every_promise_of_its_openapi_document(
    trader: dict[str, Any], tmp_path: Path
) -> None:
    """Property-based requests generated from the live node's own /openapi.json, every
    check on: no 5xx, statuses, content types, headers and bodies as declared,
    schema-valid requests accepted, schema-invalid ones refused, 405 with Allow for
    undeclared methods, 401 without the token. Bounded by examples per operation and
    a fixed seed, so a run is reproducible and takes about a minute on two cores."""
    # a BID of the node's own, so GET /orders/{id}/explain is reached, not only its 404;
    # this node has no chain, so no deal or slot can exist: their 404s are the answer
    placed = httpx.post(
        trader["url"] + "/orders",
        json={"side": "bid", "price_per_hour": "3600", "duration": 3600, "cpu_cores": 1},
        headers=trader["auth"],
        timeout=10,
    )
    assert placed.status_code == 201, placed.text
    bid_id = placed.json()["order"]["order_id"]
    (tmp_path / "schemathesis.toml").write_text(
        "[[operations]]\n"
        'include-path = "/orders/{order_id}/explain"\n'
        f'parameters = {{ order_id = "{bid_id}" }}\n'
        "[[operations]]\n"
        'include-path-regex = "^/(deals/[{]deal_id[}]|slots/[{]slot_id[}])"\n'
        "warnings = false\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            *("-m", "schemathesis.cli", "run", trader["url"] + "/openapi.json"),
            *("--header", f"Authorization: {trader['auth']['Authorization']}"),
            *("--checks", "all", "--max-examples", "10", "--seed", "1", "--workers", "1"),
            *("--request-timeout", "10", "--no-color", "--warnings", WARNINGS),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # its example database and reports stay out of the tree
        timeout=280,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout, result.stdout[-4000:]
    _alive(trader)
