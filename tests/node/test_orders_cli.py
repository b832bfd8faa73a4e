"""`sonm-p2p order` and `sonm-p2p orders` against the orders API served over loopback HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from gossip import codec
from gossip.eip712 import SigningDomain
from gossip.orders import Order
from p2pnode.api import orders as orders_api
from p2pnode.api.app import build_app
from p2pnode.api.auth import load_or_create_token
from p2pnode.api.server import serve_api
from p2pnode.api.state import NodeState
from p2pnode.cli import orders as cli
from p2pnode.cli.main import build_parser, main
from p2pnode.config import NodeConfig
from p2pnode.errors import UserError
from p2pnode.market.book import OrderBook
from p2pnode.market.desk import OrderDesk
from p2pnode.metrics import NodeMetrics
from p2pnode.storage import Storage

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
DOMAIN = SigningDomain(chain_id=31337)


class Publisher:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def __call__(self, topic: str, data: bytes) -> bytes:
        self.sent.append(data)
        return b"id"


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The orders API served by hypercorn on 127.0.0.1 in a trio thread, as the daemon does."""
    for var in ("SONM_NODE_DATA_DIR", "SONM_API_PORT", "SONM_API_HOST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COLUMNS", "250")
    storage = Storage.open_in(tmp_path)
    pub = Publisher()
    desk = OrderDesk(OrderBook(storage), DOMAIN, private_key=KEY, publish=pub)
    state = NodeState(config=NodeConfig(), storage=storage, metrics=NodeMetrics(), peer_id="Me")
    state.services["orders"] = desk
    app = build_app(state, load_or_create_token(tmp_path), [orders_api.router])
    started = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        async with trio.open_nursery() as nursery:
            box["url"] = await nursery.start(serve_api, app, "127.0.0.1", 0)
            box["token"] = trio.lowlevel.current_trio_token()
            box["scope"] = nursery.cancel_scope
            started.set()

    thread = threading.Thread(target=trio.run, args=(serve,), daemon=True)
    thread.start()
    assert started.wait(20), "API did not start"
    (tmp_path / "ready.json").write_text(json.dumps({"api_url": box["url"]}))
    yield {"dir": str(tmp_path), "pub": pub, "desk": desk}
    trio.from_thread.run_sync(box["scope"].cancel, trio_token=box["token"])
    thread.join(10)
    storage.close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_ask_list_cancel_end_to_end(
    node: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    d = node["dir"]
    rc, out, err = run(
        capsys,
        *("order", "ask", "--data-dir", d, "--price", "0.25", "--duration", "2h"),
        *("--cpu", "8", "--ram", "16GiB", "--gpus", "2", "--gpu-mem", "8GiB"),
        *("--net-in", "1Gbit", "--network", "in/out", "--geo", "DE"),
        *("--prop", "os=linux", "--bench", "gpu-eth-hashrate=60000000", "--json"),
    )
    assert rc == 0, err
    placed = json.loads(out)
    order = placed["order"]
    assert placed["published"] is True
    assert order["price_per_hour"] == str(25 * 10**16)
    assert (order["duration"], order["ram_bytes"], order["net_in_bps"]) == (7200, 2**34, 10**9)
    signed = codec.decode(node["pub"].sent[0])
    assert isinstance(signed, Order) and signed.gpu_mem_bytes == 8 * 2**30
    assert "0x" + signed.order_id(DOMAIN).hex() == order["order_id"]

    rc, out, _ = run(capsys, "order", "bid", "--data-dir", d, "--price", "1", "--cpu", "2")
    assert rc == 0 and "placed BID" in out and "published" in out

    rc, out, _ = run(capsys, "orders", "--data-dir", d)
    assert rc == 0
    assert "2 orders" in out and "ASK" in out and "0.25" in out and "2x8GiB" in out
    assert "in/out" in out and "open, own" in out

    rc, out, _ = run(capsys, "orders", "--data-dir", d, "--side", "bid", "--json")
    assert [o["side"] for o in json.loads(out)["orders"]] == ["bid"]
    rc, out, _ = run(capsys, "orders", "--data-dir", d, "--min-ram", "8GiB", "--json")
    assert [o["order_id"] for o in json.loads(out)["orders"]] == [order["order_id"]]
    rc, out, _ = run(capsys, "orders", "--data-dir", d, "--max-price", "0.5", "--json")
    assert json.loads(out)["count"] == 1

    rc, out, err = run(capsys, "order", "cancel", "--data-dir", d, order["order_id"])
    assert rc == 0 and "cancelled ASK" in out, err
    rc, out, _ = run(capsys, "orders", "--data-dir", d, "--side", "ask", "--json")
    assert json.loads(out)["count"] == 0
    rc, out, _ = run(capsys, "orders", "--data-dir", d, "--side", "ask", "--all")
    assert "cancelled" in out


def test_api_errors_come_back_as_one_line(
    node: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    d = node["dir"]
    rc, _, err = run(capsys, "order", "ask", "--data-dir", d, "--price", "1", "--geo", "de")
    assert rc == 2 and "geo" in err and "422" in err and len(err.strip().splitlines()) == 1
    rc, _, err = run(capsys, "order", "cancel", "--data-dir", d, "0x" + "00" * 32)
    assert rc == 2 and "404" in err
    rc, _, err = run(capsys, "orders", "--data-dir", d, "--geo", "de")
    assert rc == 2 and "geo" in err
    rc, _, err = run(capsys, "order", "ask", "--data-dir", d, "--price", "abc")
    assert rc == 2 and "--price" in err
    assert node["pub"].sent == []


def test_node_not_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "orders", "--data-dir", str(tmp_path))
    assert rc == 2 and "no API token" in err
    load_or_create_token(tmp_path)
    (tmp_path / "ready.json").write_text(json.dumps({"api_url": "http://127.0.0.1:9"}))
    rc, _, err = run(capsys, "orders", "--data-dir", str(tmp_path))
    assert rc == 2 and "not answering" in err


@pytest.mark.parametrize(
    "fn, text, value",
    [
        (cli.parse_size, "16GiB", 16 * 2**30),
        (cli.parse_size, "500 MB", 500 * 10**6),
        (cli.parse_size, "1024", 1024),
        (cli.parse_size, "1.5KiB", 1536),
        (cli.parse_rate, "100Mbit", 10**8),
        (cli.parse_rate, "2gbit", 2 * 10**9),
        (cli.parse_duration, "2h", 7200),
        (cli.parse_duration, "1d", 86400),
        (cli.parse_duration, "90", 90),
        (cli.parse_price, "0.25", 25 * 10**16),
        (cli.parse_price, "3 SNM", 3 * 10**18),
        (cli.parse_price, "12wei", 12),
        (cli.parse_price, "0.000000000000000001", 1),
    ],
)
def test_units(fn: Any, text: str, value: int) -> None:
    assert fn("--x", text) == value


@pytest.mark.parametrize(
    "fn, text",
    [
        (cli.parse_size, "16 GiBs"),
        (cli.parse_size, "-1"),
        (cli.parse_size, "0.5B"),
        (cli.parse_rate, "10MB"),
        (cli.parse_duration, "1y"),
        (cli.parse_price, "abc"),
        (cli.parse_price, "-1"),
        (cli.parse_price, "0.0000000000000000001"),
        (cli.parse_price, "nan"),
        (cli.parse_price, "inf"),
        (cli.parse_price, "-Infinity wei"),
    ],
)
def test_bad_units_name_the_option(fn: Any, text: str) -> None:
    with pytest.raises(UserError, match="--x"):
        fn("--x", text)


def test_formatting() -> None:
    assert cli.format_snm(25 * 10**16) == "0.25"
    assert cli.format_snm(3 * 10**18) == "3"
    assert cli.format_size(16 * 2**30) == "16GiB" and cli.format_size(12) == "12B"
    assert cli.format_duration(0) == "spot" and cli.format_duration(7200) == "2h"
    assert cli.format_duration(61) == "61s"


def test_body_from_the_command_line() -> None:
    args = build_parser().parse_args(
        [
            *("order", "bid", "--price", "0.1", "--min-rating", "75.5"),
            *("--blacklist", "0x" + "11" * 20, "--counterparty", "0x" + "22" * 20),
        ]
    )
    body = cli.order_body(args)
    assert body["side"] == "bid" and body["min_rating"] == 7550
    assert body["blacklist"] == ["0x" + "11" * 20] and body["valid_for"] == 86400
    bad = build_parser().parse_args(["order", "bid", "--price", "1", "--min-rating", "101"])
    with pytest.raises(UserError, match="min-rating"):
        cli.order_body(bad)
    bad = build_parser().parse_args(["order", "bid", "--price", "1", "--bench", "cpu-cores=x"])
    with pytest.raises(UserError, match="bench"):
        cli.order_body(bad)
    bad = build_parser().parse_args(["order", "bid", "--price", "1", "--prop", "novalue"])
    with pytest.raises(UserError, match="KEY=VALUE"):
        cli.order_body(bad)
