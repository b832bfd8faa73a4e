"""The orders endpoints on their own app: place, cancel, list, with real keys and SQLite.

What the desk publishes is checked by a real validator, as a receiving node would
check it; the pubsub driver itself is replaced by a recorder of published bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from fastapi.testclient import TestClient

from gossip import codec, eip712
from gossip.eip712 import SigningDomain
from gossip.messages import address_hex
from gossip.orders import NetworkType, Order, OrderCancel, Side
from gossip.topics import ORDERS_TOPIC
from gossip.validation import ValidationResult
from gossip.validators import MessageValidator, ValidatorParams
from p2pnode.api import orders as orders_api
from p2pnode.api.app import build_app
from p2pnode.api.state import NodeState
from p2pnode.config import NodeConfig
from p2pnode.errors import LocalError, UserError
from p2pnode.market.book import OrderBook, OrderFilter
from p2pnode.market.desk import OrderDesk, orders_service
from p2pnode.metrics import NodeMetrics
from p2pnode.storage import Storage

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
OTHER_KEY = bytes.fromhex("22" * 32)
ADDR = eip712.address_of_key(KEY)
DOMAIN = SigningDomain(chain_id=31337)
T0 = 1_700_000_000.0
AUTH = {"Authorization": "Bearer tok"}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Publisher:
    """Records what would go on the wire; can be told there are no peers yet."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.peers = True

    async def __call__(self, topic: str, data: bytes) -> bytes:
        if not self.peers:
            raise LocalError("no peer subscribes to the topic")
        self.sent.append((topic, data))
        return b"id"


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Any]:
    storage = Storage.open_in(tmp_path)
    clock = Clock()
    pub = Publisher()
    desk = OrderDesk(OrderBook(storage), DOMAIN, private_key=KEY, publish=pub, clock=clock)
    state = NodeState(config=NodeConfig(), storage=storage, metrics=NodeMetrics(), peer_id="Me")
    state.services["orders"] = desk
    client = TestClient(build_app(state, "tok", [orders_api.router]))
    client.headers.update(AUTH)
    remote = MessageValidator(ValidatorParams(domain=DOMAIN), clock=clock)
    return {"client": client, "desk": desk, "pub": pub, "clock": clock, "remote": remote}


def ask_body(**kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "side": "ask",
        "price_per_hour": str(3 * 10**17),
        "duration": 3600,
        "cpu_cores": 8,
        "ram_bytes": 16 * 2**30,
        "gpu_count": 2,
        "gpu_mem_bytes": 8 * 2**30,
        "network": "in/out",
        "properties": {"os": "linux"},
        "geo": "DE",
        "benchmarks": {"gpu-eth-hashrate": 60_000_000},
    }
    body.update(kw)
    return body


def foreign_order(nonce: int, key: bytes = OTHER_KEY, **kw: Any) -> tuple[Order, bytes]:
    base: dict[str, Any] = dict(
        author=eip712.address_of_key(key),
        side=Side.BID,
        price_per_hour=10**17,
        duration=1800,
        nonce=nonce,
        valid_from=int(T0),
        valid_until=int(T0) + 3600,
        cpu_cores=1,
    )
    base.update(kw)
    order = Order.create(**base).signed(DOMAIN, key)
    return order, codec.encode(order)


def test_place_signs_publishes_and_lists(world: dict[str, Any]) -> None:
    c, pub, remote = world["client"], world["pub"], world["remote"]
    resp = c.post("/orders", json=ask_body())
    assert resp.status_code == 201, resp.text
    out = resp.json()
    assert out["published"] is True and out["publish_error"] is None
    order = out["order"]
    assert order["author"] == address_hex(ADDR)
    assert order["side"] == "ask" and order["own"] is True and order["cpu_cores"] == 8
    assert order["benchmarks"]["gpu-eth-hashrate"] == 60_000_000
    assert order["valid_until"] - order["valid_from"] == 86_400
    # what went out is a valid signed order to any receiving node, with the same id
    [(topic, data)] = pub.sent
    assert topic == ORDERS_TOPIC
    verdict = remote.check(ORDERS_TOPIC, data, T0 + 1)
    assert verdict.result is ValidationResult.ACCEPT
    assert order["order_id"] == "0x" + verdict.digest.hex()
    listed = c.get("/orders").json()
    assert listed["count"] == 1 and listed["orders"][0]["order_id"] == order["order_id"]
    assert c.get(f"/orders/{order['order_id']}").json()["price_per_hour"] == str(3 * 10**17)


def test_nonces_rise_within_one_millisecond(world: dict[str, Any]) -> None:
    c, pub = world["client"], world["pub"]
    for _ in range(3):
        assert c.post("/orders", json=ask_body()).status_code == 201
    nonces = [codec.decode(d).nonce for _, d in pub.sent]  # type: ignore[union-attr]
    assert nonces == sorted(set(nonces)) and len(nonces) == 3
    results = [world["remote"](ORDERS_TOPIC, d, b"p") for _, d in pub.sent]
    assert results == [ValidationResult.ACCEPT] * 3


def error_fields(resp: Any) -> list[str]:
    """The fields a 422 names, checked to be in the one documented shape."""
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert isinstance(detail, list) and detail, detail
    for item in detail:
        assert isinstance(item["msg"], str) and isinstance(item["type"], str)
        assert all(isinstance(p, (str, int)) for p in item["loc"])
    return [".".join(str(p) for p in item["loc"][1:]) + ": " + item["msg"] for item in detail]


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"geo": "de"}, "geo"),
        ({"counterparty": "0x12"}, "counterparty"),
        ({"blacklist": ["nope"]}, "blacklist.0"),
        ({"benchmarks": {"gpu-flops": 1}}, "benchmarks.gpu-flops"),
        ({"properties": {"Bad Key": "x"}}, "properties.Bad Key"),
        ({"price_per_hour": "1" * 78}, "price_per_hour"),
        ({"price_per_hour": "-5"}, "price_per_hour"),
        ({"side": "sell"}, "side"),
        ({"valid_for": 10}, "valid_for"),
        ({"cpu_cores": 2**64}, "cpu_cores"),
        # strict types: no bool or string where a number belongs
        ({"duration": True}, "duration"),
        ({"duration": "3600"}, "duration"),
        ({"min_rating": False}, "min_rating"),
        ({"price_per_hour": 5}, "price_per_hour"),
        ({"duration": 10**10}, "duration"),
        # a resource is given as its field, never overwritten by (or overwriting) a benchmark
        ({"cpu_cores": 4, "benchmarks": {"cpu-cores": 8}}, "benchmarks.cpu-cores is a resource"),
        ({"benchmarks": {"gpu-count": -1}}, "benchmarks.gpu-count is a resource"),
        ({"gpu_count": -1}, "gpu_count"),
        ({"benchmarks": {"gpu-redshift": -1}}, "benchmarks.gpu-redshift"),
        ({"unknown_field": 1}, "unknown_field"),
    ],
)
def test_bad_orders_get_422_naming_the_field(
    world: dict[str, Any], change: dict[str, Any], needle: str
) -> None:
    resp = world["client"].post("/orders", json=ask_body(**change))
    assert any(needle in f for f in error_fields(resp)), resp.text
    assert world["pub"].sent == []


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e999999"])
def test_non_finite_numbers_are_422_not_500(world: dict[str, Any], number: bytes) -> None:
    body = b'{"side":"ask","price_per_hour":"1","duration":' + number + b"}"
    resp = world["client"].post(
        "/orders", content=body, headers={"Content-Type": "application/json"}
    )
    assert any("JSON number" in f or "overflows" in f for f in error_fields(resp)), resp.text
    assert world["pub"].sent == []


def test_an_integral_float_is_an_integer_as_json_schema_says(world: dict[str, Any]) -> None:
    resp = world["client"].post("/orders", json=ask_body(duration=1225.0, cpu_cores=3.0))
    assert resp.status_code == 201, resp.text
    assert resp.json()["order"]["duration"] == 1225 and resp.json()["order"]["cpu_cores"] == 3
    assert error_fields(world["client"].post("/orders", json=ask_body(duration=1.5)))


def test_a_benchmark_given_once_is_the_value_signed(world: dict[str, Any]) -> None:
    c, pub = world["client"], world["pub"]
    body = ask_body(benchmarks={"gpu-redshift": 7, "cpu-sysbench-multi": 900}, cpu_cores=3)
    out = c.post("/orders", json=body).json()["order"]
    signed = codec.decode(pub.sent[-1][1])
    assert isinstance(signed, Order)
    assert signed.benchmark("gpu-redshift") == 7 == out["benchmarks"]["gpu-redshift"]
    assert signed.benchmark("cpu-sysbench-multi") == 900 and signed.cpu_cores == 3


def test_without_an_account_placing_is_refused(tmp_path: Path) -> None:
    storage = Storage.open_in(tmp_path)
    desk = OrderDesk(OrderBook(storage), DOMAIN, private_key=None, publish=Publisher())
    state = NodeState(config=NodeConfig(), storage=storage, metrics=NodeMetrics(), peer_id="Me")
    state.services["orders"] = desk
    c = TestClient(build_app(state, "tok", [orders_api.router]))
    resp = c.post("/orders", json=ask_body(), headers=AUTH)
    assert resp.status_code == 409 and "keys new" in resp.text
    assert c.get("/orders", headers=AUTH).json()["count"] == 0


def test_without_the_service_the_endpoints_say_so(tmp_path: Path) -> None:
    state = NodeState(
        config=NodeConfig(), storage=Storage.open_in(tmp_path), metrics=NodeMetrics(), peer_id="M"
    )
    c = TestClient(build_app(state, "tok", [orders_api.router]))
    assert c.get("/orders", headers=AUTH).status_code == 503
    assert c.post("/orders", json=ask_body(), headers=AUTH).status_code == 503


def test_no_peers_yet_keeps_the_order_and_republishes(world: dict[str, Any]) -> None:
    c, pub, desk = world["client"], world["pub"], world["desk"]
    pub.peers = False
    out = c.post("/orders", json=ask_body()).json()
    assert out["published"] is False and "no peer" in out["publish_error"]
    assert c.get("/orders").json()["orders"][0]["published"] is False
    assert trio.run(desk.republish_once) == 0
    pub.peers = True
    assert trio.run(desk.republish_once) == 1
    assert trio.run(desk.republish_once) == 0
    assert c.get("/orders").json()["orders"][0]["published"] is True
    assert len(pub.sent) == 1


def test_the_service_loop_republishes_on_its_own(world: dict[str, Any]) -> None:
    desk, pub = world["desk"], world["pub"]
    pub.peers = False
    world["client"].post("/orders", json=ask_body())

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(desk.run)
            await trio.sleep(desk.republish_interval * 1.5)
            assert pub.sent == []
            pub.peers = True
            await trio.sleep(desk.republish_interval)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert len(pub.sent) == 1


def test_cancel_own_order(world: dict[str, Any]) -> None:
    c, pub, remote = world["client"], world["pub"], world["remote"]
    order_id = c.post("/orders", json=ask_body()).json()["order"]["order_id"]
    resp = c.post(f"/orders/{order_id}/cancel")
    assert resp.status_code == 200, resp.text
    assert resp.json()["order"]["cancelled"] is True and resp.json()["published"] is True
    cancel = codec.decode(pub.sent[-1][1])
    assert isinstance(cancel, OrderCancel) and "0x" + cancel.order_id.hex() == order_id
    assert cancel.valid_until == resp.json()["order"]["valid_until"]
    assert remote(ORDERS_TOPIC, pub.sent[-1][1], b"p") is ValidationResult.ACCEPT
    assert c.get("/orders").json()["count"] == 0
    assert c.get("/orders?include_cancelled=true").json()["count"] == 1


def test_cancelling_twice_is_409_and_signs_nothing_more(world: dict[str, Any]) -> None:
    c, pub = world["client"], world["pub"]
    order_id = c.post("/orders", json=ask_body()).json()["order"]["order_id"]
    assert c.post(f"/orders/{order_id}/cancel").status_code == 200
    sent = len(pub.sent)
    again = c.post(f"/orders/{order_id}/cancel")
    assert again.status_code == 409 and "cancelled already" in again.json()["detail"]
    assert len(pub.sent) == sent  # not re-signed, not re-gossiped


def test_cancel_errors(world: dict[str, Any]) -> None:
    c, desk = world["client"], world["desk"]
    assert c.post("/orders/0x" + "00" * 32 + "/cancel").status_code == 404
    assert c.post("/orders/0x1234/cancel").status_code == 422
    assert c.get("/orders/zz").status_code == 422
    # bytes.fromhex skips spaces; an id is 0x and 64 hex digits, nothing else
    spaced = "0x" + " ".join(["00"] * 32)
    assert error_fields(c.get(f"/orders/{spaced}"))
    assert error_fields(c.post(f"/orders/{spaced}/cancel"))
    order, data = foreign_order(1)
    desk.on_delivery(ORDERS_TOPIC, data)
    resp = c.post(f"/orders/0x{order.order_id(DOMAIN).hex()}/cancel")
    assert resp.status_code == 403 and "belongs to" in resp.text


def test_deliveries_are_booked_and_cancellations_apply_in_any_order(
    world: dict[str, Any],
) -> None:
    desk, c = world["desk"], world["client"]
    o1, d1 = foreign_order(1)
    o2, d2 = foreign_order(2)
    oid2 = o2.order_id(DOMAIN)
    cancel2 = OrderCancel(o2.author, oid2, 9, int(T0), int(T0) + 3600).signed(DOMAIN, OTHER_KEY)
    stranger = OrderCancel(ADDR, o1.order_id(DOMAIN), 9, int(T0), int(T0) + 3600).signed(
        DOMAIN, KEY
    )
    desk.on_delivery(ORDERS_TOPIC, codec.encode(cancel2))  # before its order
    desk.on_delivery(ORDERS_TOPIC, d1)
    desk.on_delivery(ORDERS_TOPIC, d2)
    desk.on_delivery(ORDERS_TOPIC, codec.encode(stranger))  # not the author: no effect
    desk.on_delivery(ORDERS_TOPIC, d1)  # duplicate
    desk.on_delivery("/sonm/hubs/1", d1)  # not ours
    desk.on_delivery(ORDERS_TOPIC, b"junk")
    assert desk.delivered == 5 and desk.bad_deliveries == 1
    listed = c.get("/orders").json()
    assert [o["nonce"] for o in listed["orders"]] == ["1"]
    assert listed["orders"][0]["own"] is False


def test_a_strangers_cancel_first_does_not_crowd_out_the_authors(
    world: dict[str, Any],
) -> None:
    """Anyone can sign a cancel for any order id; arriving first, a stranger's must
    neither apply nor stop the author's own cancel from applying later."""
    desk, c = world["desk"], world["client"]
    order, data = foreign_order(3)
    oid = order.order_id(DOMAIN)
    stranger = OrderCancel(ADDR, oid, 9, int(T0), int(T0) + 3600).signed(DOMAIN, KEY)
    author = OrderCancel(order.author, oid, 9, int(T0), int(T0) + 3600).signed(DOMAIN, OTHER_KEY)
    desk.on_delivery(ORDERS_TOPIC, codec.encode(stranger))
    desk.on_delivery(ORDERS_TOPIC, codec.encode(author))
    desk.on_delivery(ORDERS_TOPIC, data)  # the order itself arrives last
    assert c.get("/orders").json()["orders"] == []
    [entry] = c.get("/orders?include_cancelled=true").json()["orders"]
    assert entry["cancelled"] is True


def test_delivery_uses_the_validators_decoded_message(world: dict[str, Any]) -> None:
    remote, storage = world["remote"], world["desk"].book.storage
    desk = OrderDesk(
        OrderBook(storage),
        DOMAIN,
        private_key=None,
        publish=None,
        accepted=remote.pop_accepted,
        clock=world["clock"],
    )
    order, data = foreign_order(5)
    assert remote(ORDERS_TOPIC, data, b"p") is ValidationResult.ACCEPT
    desk.on_delivery(ORDERS_TOPIC, data)
    entry = desk.book.get(order.order_id(DOMAIN))
    assert entry is not None and entry.order == order
    assert remote.pop_accepted(data) is None  # taken


def test_filters_and_sorting(world: dict[str, Any]) -> None:
    desk, c, clock = world["desk"], world["client"], world["clock"]
    specs = [
        dict(side=Side.ASK, price_per_hour=5, cpu_cores=2, geo="DE"),
        dict(side=Side.ASK, price_per_hour=3, cpu_cores=16, gpu_count=2, geo="US"),
        dict(side=Side.BID, price_per_hour=2**200, cpu_cores=4, network=NetworkType.OUTBOUND),
        dict(side=Side.BID, price_per_hour=7, ram_bytes=2**40, valid_until=int(T0) + 100),
    ]
    for i, spec in enumerate(specs):
        desk.on_delivery(ORDERS_TOPIC, foreign_order(i + 1, **spec)[1])
    _, mine = foreign_order(50, key=KEY, side=Side.BID, price_per_hour=1)
    desk.on_delivery(ORDERS_TOPIC, mine)

    def nonces(query: str) -> list[str]:
        resp = c.get("/orders" + query)
        assert resp.status_code == 200, resp.text
        return [o["nonce"] for o in resp.json()["orders"]]

    assert nonces("?side=ask") == ["2", "1"]  # cheapest first
    assert nonces("?side=bid&sort=-price") == ["3", "4", "50"]
    assert nonces("?min_cpu_cores=4") == ["2", "3"]
    assert nonces("?min_gpu_count=1") == ["2"]
    assert nonces("?min_ram_bytes=1099511627776") == ["4"]
    assert nonces("?max_price=5") == ["50", "2", "1"]
    assert nonces(f"?min_price={2**100}") == ["3"]
    assert nonces("?geo=DE") == ["1"]
    assert nonces("?network=out") == ["3"]
    assert nonces(f"?author={address_hex(ADDR)}") == ["50"]
    assert nonces("?limit=2") == ["50", "2"]
    clock.now = T0 + 200  # order 4 has expired
    assert nonces("?side=bid") == ["50", "3"]
    assert nonces("?side=bid&include_expired=true") == ["50", "4", "3"]
    for bad in ("?side=sell", "?geo=de", "?limit=0", "?min_price=x", "?author=0x1"):
        assert c.get("/orders" + bad).status_code == 422, bad


def test_book_prunes_and_caps(tmp_path: Path) -> None:
    storage = Storage.open_in(tmp_path)
    book = OrderBook(storage, max_orders=3)
    for n in range(5):
        order, data = foreign_order(n, valid_until=int(T0) + 100 + n)
        book.add(order, order.order_id(DOMAIN), data, T0, own=False, published=True)
    assert book.count() == 3
    kept = [e.order.nonce for e in book.query(OrderFilter(limit=10), T0)]
    assert sorted(kept) == [2, 3, 4]  # the earliest-expiring went first
    assert book.prune(T0 + 103.5) == 2
    assert book.count() == 1 == OrderBook(storage).count()  # counted again on reopen
    with pytest.raises(UserError, match="limit"):
        book.query(OrderFilter(limit=0), T0)
    with pytest.raises(ValueError, match="max_orders"):
        OrderBook(Storage.open_in(tmp_path), max_orders=0)


class FakePubSub:
    """What the desk uses of the pubsub service; publishing goes to a Publisher."""

    def __init__(self) -> None:
        self.publisher = Publisher()
        self.handlers: dict[str, list[Any]] = {}

    async def publish(self, topic: str, data: bytes) -> bytes:
        return await self.publisher(topic, data)

    def on_delivery(self, topic: str, handler: Any) -> None:
        self.handlers.setdefault(topic, []).append(handler)

    def pop_accepted(self, data: bytes) -> None:
        return None


def test_the_daemons_unlocked_account_reaches_the_desk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from p2pnode import keys
    from p2pnode.config import load_config
    from p2pnode.context import MissingRequirement, NodeContext, unlock_account

    config = load_config(None, environ={}, overrides={"node.data_dir": str(tmp_path)})
    keys.import_private_key(config.keystore_path, KEY.hex(), "pw")
    storage = Storage.open_in(tmp_path)
    key_pair = keys.load_or_create_identity(tmp_path)
    pubsub = FakePubSub()

    def ctx(*, with_pubsub: bool = True) -> NodeContext:
        return NodeContext(
            host=None,  # type: ignore[arg-type]  # the desk does not touch the host
            config=config,
            storage=storage,
            metrics=NodeMetrics(),
            key_pair=key_pair,
            account=unlock_account(config),
            pubsub=pubsub if with_pubsub else None,
        )

    monkeypatch.delenv(keys.PASSWORD_ENV, raising=False)
    assert orders_service(ctx()).address is None
    monkeypatch.setenv(keys.PASSWORD_ENV, "pw")
    desk = orders_service(ctx())
    assert desk.address == ADDR
    assert desk.on_delivery in pubsub.handlers[ORDERS_TOPIC]
    with pytest.raises(MissingRequirement, match="'orders' requires pubsub"):
        orders_service(ctx(with_pubsub=False))
    monkeypatch.setenv(keys.PASSWORD_ENV, "wrong")
    with pytest.raises(UserError):
        orders_service(ctx())


@pytest.fixture
def market_world(tmp_path: Path) -> dict[str, Any]:
    """The orders and deals areas over one real book, with the market service (no
    chain: it keeps its index and explains, deals need none of that here)."""
    from p2pnode.api import deals as deals_api
    from p2pnode.market.dealsvc import MarketParams, MarketService

    storage = Storage.open_in(tmp_path)
    clock = Clock()
    desk = OrderDesk(OrderBook(storage), DOMAIN, private_key=KEY, publish=Publisher(), clock=clock)
    svc = MarketService(
        None,
        storage,
        desk,
        None,
        hub_wallet=None,
        data_dir=tmp_path,
        params=MarketParams(),
        addrs=list,
        private_key=KEY,
        clock=clock,
    )
    state = NodeState(config=NodeConfig(), storage=storage, metrics=NodeMetrics(), peer_id="Me")
    state.services["orders"] = desk
    state.services["market"] = svc
    client = TestClient(build_app(state, "tok", [orders_api.router, deals_api.router]))
    client.headers.update(AUTH)
    return {"client": client, "desk": desk, "market": svc, "clock": clock}


def _deliver_ask(w: dict[str, Any], nonce: int, key: bytes = OTHER_KEY, **kw: Any) -> str:
    order, data = foreign_order(nonce, key, side=Side.ASK, **kw)
    w["desk"].on_delivery(ORDERS_TOPIC, data)
    w["market"].on_delivery(ORDERS_TOPIC, data)
    return "0x" + order.order_id(DOMAIN).hex()


def test_explain_counts_each_constraint_and_names_the_winner(
    market_world: dict[str, Any],
) -> None:
    c = market_world["client"]
    bid = c.post(
        "/orders",
        json=ask_body(side="bid", price_per_hour=str(2 * 10**17), cpu_cores=8, duration=3600),
    )
    assert bid.status_code == 201, bid.text
    bid_id = bid.json()["order"]["order_id"]
    third = bytes.fromhex("33" * 32)
    base = dict(cpu_cores=8, ram_bytes=16 * 2**30, gpu_count=2, gpu_mem_bytes=8 * 2**30)
    base.update(network=NetworkType.INBOUND_OUTBOUND, benchmarks={"gpu-eth-hashrate": 10**8})
    win = _deliver_ask(market_world, 1, price_per_hour=10**17, duration=3600, **base)
    _deliver_ask(market_world, 2, price_per_hour=3 * 10**17, duration=3600, **base)  # price
    _deliver_ask(market_world, 3, price_per_hour=10**17, duration=600, **base)  # duration
    small = {**base, "cpu_cores": 2}
    _deliver_ask(market_world, 1, third, price_per_hour=3 * 10**17, duration=3600, **small)
    _deliver_ask(
        market_world, 2, third, price_per_hour=10**17, duration=3600, blacklist=[ADDR], **base
    )
    resp = c.get(f"/orders/{bid_id}/explain")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["bid_id"] == bid_id and (body["total"], body["matching"]) == (5, 1)
    by = {x["name"]: (x["ruled_out"], x["only"]) for x in body["constraints"]}
    assert by["price"] == (2, 1) and by["duration"] == (1, 1) and by["cpu-cores"] == (1, 0)
    assert by["blacklist"] == (1, 1) and by["network"] == (0, 0) and by["rating"] == (0, 0)
    assert [x["name"] for x in body["constraints"]][:2] == ["price", "duration"]
    assert body["winner"]["order_id"] == win
    assert body["winner"]["author"].lower() == address_hex(eip712.address_of_key(OTHER_KEY)).lower()
    assert body["winner"]["price_per_hour"] == str(10**17)


def test_explain_refuses_an_ask_and_an_unknown_id(market_world: dict[str, Any]) -> None:
    c = market_world["client"]
    ask_id = _deliver_ask(market_world, 1)
    resp = c.get(f"/orders/{ask_id}/explain")
    assert resp.status_code == 409 and "only a BID" in resp.json()["detail"]
    resp = c.get("/orders/0x" + "ab" * 32 + "/explain")
    assert resp.status_code == 404 and "no order" in resp.json()["detail"]
    assert c.get("/orders/0x12/explain").status_code == 422
    # a BID with nothing to match: every count zero, no winner
    bid = c.post("/orders", json=ask_body(side="bid")).json()["order"]["order_id"]
    assert c.post(f"/orders/{ask_id}/cancel").status_code == 403  # not ours: still indexed
    body = c.get(f"/orders/{bid}/explain").json()
    assert body["total"] == 1 and body["winner"] is None


def test_explain_without_the_market_service_is_503(world: dict[str, Any]) -> None:
    from p2pnode.api import deals as deals_api

    state = NodeState(
        config=NodeConfig(), storage=world["desk"].book.storage, metrics=NodeMetrics(), peer_id="Me"
    )
    client = TestClient(build_app(state, "tok", [deals_api.router]))
    client.headers.update(AUTH)
    resp = client.get("/orders/0x" + "ab" * 32 + "/explain")
    assert resp.status_code == 503 and "market" in resp.json()["detail"]
