"""`sonm-p2p order` and `sonm-p2p orders` against the orders API served over loopback HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from gossip import codec
from gossip.eip712 import SigningDomain
from gossip.orders import Order
from p2pnode.api import deals as deals_api
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
from p2pnode.market.dealsvc import MarketParams, MarketService
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
    # the market service without a chain: it keeps its ASK index and explains BIDs
    market = MarketService(
        None,
        storage,
        desk,
        None,
        hub_wallet=None,
        data_dir=tmp_path,
        params=MarketParams(),
        addrs=list,
        private_key=KEY,
    )
    state.services["market"] = market
    routers = [orders_api.router, deals_api.router]
    app = build_app(state, load_or_create_token(tmp_path), routers)
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
    yield {"dir": str(tmp_path), "pub": pub, "desk": desk, "market": market}
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


def test_a_resource_given_as_a_benchmark_is_the_value_signed(
    node: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    d = node["dir"]
    rc, _, err = run(
        capsys,
        *("order", "ask", "--data-dir", d, "--price", "1"),
        *("--bench", "ram-size=1000", "--bench", "gpu-count=2", "--bench", "gpu-redshift=5"),
    )
    assert rc == 0, err
    signed = codec.decode(node["pub"].sent[-1])
    assert isinstance(signed, Order)
    assert (signed.ram_bytes, signed.gpu_count, signed.benchmark("gpu-redshift")) == (1000, 2, 5)
    sent = len(node["pub"].sent)
    for argv in (
        ("--bench", "cpu-cores=8", "--cpu", "4"),  # two different values for one resource
        ("--bench", "gpu-count=-1"),
        ("--bench", "ram-size=1", "--ram", "2KiB"),
    ):
        rc, _, err = run(capsys, "order", "ask", "--data-dir", d, "--price", "1", *argv)
        assert rc == 2 and len(err.strip().splitlines()) == 1, err
        assert "benchmarks." in err and "Traceback" not in err
    assert len(node["pub"].sent) == sent


@pytest.mark.parametrize("price", ["1e999999", "1e999999999999", "1e77wei", "0.5e-999999999"])
def test_absurd_prices_are_one_line_and_exit_2(
    node: dict[str, Any], capsys: pytest.CaptureFixture[str], price: str
) -> None:
    d = node["dir"]
    rc, _, err = run(capsys, "order", "ask", "--data-dir", d, "--price", price)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "--price" in err, err
    rc, _, err = run(capsys, "orders", "--data-dir", d, "--min-price", price)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "--min-price" in err, err
    assert node["pub"].sent == []


def test_the_table_shows_ids_that_cancel_takes(
    node: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    d = node["dir"]
    for price in ("1", "2"):
        rc, _, err = run(capsys, "order", "ask", "--data-dir", d, "--price", price)
        assert rc == 0, err
    rc, out, _ = run(capsys, "orders", "--data-dir", d, "--json")
    full = [o["order_id"] for o in json.loads(out)["orders"]]
    rc, out, _ = run(capsys, "orders", "--data-dir", d)
    shown = [line.split()[1] for line in out.splitlines() if line.startswith("│ 0x")]
    assert len(shown) == 2 and not any("…" in s for s in shown)
    assert [f for f in full if f.startswith(shown[0])] == [full[0]]
    rc, out, err = run(capsys, "order", "cancel", "--data-dir", d, shown[0])
    assert rc == 0 and "cancelled ASK" in out and full[0] in out, err
    rc, _, err = run(capsys, "order", "cancel", "--data-dir", d, shown[0])
    assert rc == 2 and "409" in err and "cancelled already" in err
    rc, _, err = run(capsys, "order", "cancel", "--data-dir", d, "0x")
    assert rc == 2 and "order id" in err
    unused = next(c for c in "0123456789abcdef" if not any(f[2] == c for f in full))
    rc, _, err = run(capsys, "order", "cancel", "--data-dir", d, "0x" + unused)
    assert rc == 2 and "no order of this node's starts with it" in err, err
    # two own orders sharing a first digit (pigeonhole: at most 17 orders) are ambiguous
    firsts = {f[:3] for f in full}
    price = 3
    while len(firsts) == len(full):
        rc, out, _ = run(capsys, "order", "ask", "--data-dir", d, "--price", str(price), "--json")
        full.append(json.loads(out)["order"]["order_id"])
        firsts.add(full[-1][:3])
        price += 1
    shared = next(p for p in firsts if sum(f.startswith(p) for f in full) > 1)
    rc, _, err = run(capsys, "order", "cancel", "--data-dir", d, shared)
    assert rc == 2 and "give more digits" in err, err
    rc, _, err = run(capsys, "order", "cancel", "--data-dir", d, "0x 12")
    assert rc == 2 and "hex digits" in err


def test_short_ids_are_unambiguous_prefixes() -> None:
    ids = ["0x" + "ab" * 32, "0x" + "ab" * 31 + "cd", "0x" + "12" * 32]
    shown = cli.short_ids(ids)
    assert shown[ids[2]] == ids[2][: cli.ID_SHOWN_MIN]
    assert shown[ids[0]] == ids[0][:65] and shown[ids[1]] == ids[1][:65]
    for full, prefix in shown.items():
        assert [i for i in ids if i.startswith(prefix)] == [full]


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


OTHER_KEY = bytes.fromhex("22" * 32)


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    """The command line as a user runs it: its own process."""
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "p2pnode.cli.main", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_explain_in_a_subprocess(node: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    import time

    from gossip import eip712
    from gossip.orders import Side
    from gossip.topics import ORDERS_TOPIC

    d = node["dir"]
    now = int(time.time())
    ids = []
    for nonce, (price, cores) in enumerate(((10**17, 8), (5 * 10**17, 8), (10**17, 2)), 1):
        ask = Order.create(
            author=eip712.address_of_key(OTHER_KEY),
            side=Side.ASK,
            price_per_hour=price,
            duration=7200,
            nonce=nonce,
            valid_from=now,
            valid_until=now + 3600,
            cpu_cores=cores,
        ).signed(DOMAIN, OTHER_KEY)
        data = codec.encode(ask)
        node["desk"].on_delivery(ORDERS_TOPIC, data)
        node["market"].on_delivery(ORDERS_TOPIC, data)
        ids.append("0x" + ask.order_id(DOMAIN).hex())
    rc, out, err = run(
        capsys, "order", "bid", "--data-dir", d, "--price", "0.2", "--cpu", "4", "--json"
    )
    assert rc == 0, err
    bid_id = json.loads(out)["order"]["order_id"]

    got = _cli("order", "explain", "--data-dir", d, bid_id[:14])  # a prefix, as shown
    assert got.returncode == 0, got.stderr
    assert "3 ASKs, 1 match" in got.stdout and f"wins: {ids[0]}" in got.stdout
    rows = {
        line.split()[1]: line.split()[3:6:2]
        for line in got.stdout.splitlines()
        if line.startswith("│ ")
    }
    assert rows["price"] == ["1", "1"] and rows["cpu-cores"] == ["1", "1"]
    assert rows["network"] == ["0", "0"]
    got = _cli("order", "explain", "--data-dir", d, bid_id, "--json")
    assert got.returncode == 0 and json.loads(got.stdout)["winner"]["order_id"] == ids[0]

    for argv, words in (
        ((ids[1],), "409"),  # an ASK (full id: a prefix only resolves own orders)
        (("0x" + "ab" * 32,), "404"),
        (("0xzz",), "hex digits"),
    ):
        got = _cli("order", "explain", "--data-dir", d, *argv)
        assert got.returncode == 2 and words in got.stderr, got.stderr
        assert len(got.stderr.strip().splitlines()) == 1 and "Traceback" not in got.stderr


def test_bid_from_a_file(
    node: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    d = node["dir"]
    toml = tmp_path / "BID.toml"
    toml.write_text(
        'price = "0.25"\nduration = "2h"\ncpu = 4\nram = "16GiB"\nnetwork = "out"\n'
        'min-rating = 50\nblacklist = ["0x' + "11" * 20 + '"]\n'
        "[bench]\ngpu-eth-hashrate = 1000\n"
    )
    rc, out, err = run(capsys, "order", "bid", "--data-dir", d, "--file", str(toml), "--json")
    assert rc == 0, err
    order = json.loads(out)["order"]
    assert order["side"] == "bid" and order["price_per_hour"] == str(25 * 10**16)
    assert (order["duration"], order["cpu_cores"], order["ram_bytes"]) == (7200, 4, 2**34)
    assert order["network"] == "out" and order["min_rating"] == 5000
    assert order["benchmarks"]["gpu-eth-hashrate"] == 1000
    # an option typed as well wins over the file
    rc, out, err = run(
        capsys, "order", "bid", "--data-dir", d, "--file", str(toml), "--cpu", "6", "--json"
    )
    assert rc == 0 and json.loads(out)["order"]["cpu_cores"] == 6, err
    as_json = tmp_path / "bid.json"
    as_json.write_text(json.dumps({"side": "bid", "price": "1", "gpus": 1, "gpu_mem": "8GiB"}))
    got = _cli("order", "bid", "--data-dir", d, "--file", str(as_json), "--json")
    assert got.returncode == 0, got.stderr
    placed = json.loads(got.stdout)["order"]
    assert (placed["gpu_count"], placed["gpu_mem_bytes"]) == (1, 8 * 2**30)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('price = "1"\ncpus = 4\n', "unknown key 'cpus'"),
        ('price = "1"\ncpu = "four"\n', "BID.toml: cpu: 'four': expected a whole number"),
        ('price = "1"\nram = "16GX"\n', "BID.toml: ram '16GX'"),
        ("price = 0.25\n", "BID.toml: price: 0.25"),
        ('price = "1"\nnetwork = "both"\n', "BID.toml: network"),
        ('price = "1"\nside = "ask"\n', "BID.toml: side"),
        ('price = "1"\nbench = 5\n', "BID.toml: bench"),
        ('price = "1"\nmin-rating = 101\n', "BID.toml: min-rating"),
        ('price = "1"\nblacklist = "0x11"\n', "BID.toml: blacklist"),
        ("cpu = 1\n", "--price is required"),
        ("price = \n", "not valid TOML"),
    ],
)
def test_bad_files_are_one_line_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, words: str
) -> None:
    path = tmp_path / "BID.toml"
    path.write_text(text)
    rc, _, err = run(capsys, "order", "bid", "--data-dir", str(tmp_path), "--file", str(path))
    assert rc == 2 and words in err and len(err.strip().splitlines()) == 1, err


def test_file_kinds_and_missing_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, content, words in (
        ("bid.yaml", "price: 1", "expected a .toml or .json file"),
        ("bid.json", "[1, 2]", "expected a table of fields"),
        ("bid.json", '{"price": "1", "geo": 5}', "bid.json: geo: 5: expected a string"),
    ):
        path = tmp_path / name
        path.write_text(content)
        rc, _, err = run(capsys, "order", "bid", "--data-dir", str(tmp_path), "--file", str(path))
        assert rc == 2 and words in err, err
    missing = str(tmp_path / "nope.toml")
    rc, _, err = run(capsys, "order", "bid", "--data-dir", str(tmp_path), "--file", missing)
    assert rc == 2 and "--file" in err and "nope.toml" in err, err
