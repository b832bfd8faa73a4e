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


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"geo": "de"}, "geo"),
        ({"counterparty": "0x12"}, "counterparty"),
        ({"blacklist": ["nope"]}, "blacklist[0]"),
        ({"benchmarks": {"gpu-flops": 1}}, "gpu-flops"),
        ({"properties": {"Bad Key": "x"}}, "properties[0].key"),
        ({"price_per_hour": "1" * 79}, "price_per_hour"),
        ({"price_per_hour": "-5"}, "price_per_hour"),
        ({"side": "sell"}, "side"),
        ({"valid_for": 10}, "valid_for"),
        ({"cpu_cores": 2**64}, "cpu-cores"),
    ],
)
def test_bad_orders_get_422_naming_the_field(
    world: dict[str, Any], change: dict[str, Any], needle: str
) -> None:
    resp = world["client"].post("/orders", json=ask_body(**change))
    assert resp.status_code == 422
    assert needle in resp.text
    assert world["pub"].sent == []


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


def test_cancel_errors(world: dict[str, Any]) -> None:
    c, desk = world["client"], world["desk"]
    assert c.post("/orders/0x" + "00" * 32 + "/cancel").status_code == 404
    assert c.post("/orders/0x1234/cancel").status_code == 422
    assert c.get("/orders/zz").status_code == 422
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


def test_service_factory_unlocks_the_keystore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from p2pnode import keys
    from p2pnode.config import load_config

    config = load_config(None, environ={}, overrides={"node.data_dir": str(tmp_path)})
    keys.import_private_key(config.keystore_path, KEY.hex(), "pw")

    class Ctx:
        services: dict[str, Any] = {}

    class Host:
        sonm_context = Ctx()

    storage = Storage.open_in(tmp_path)
    monkeypatch.delenv(keys.PASSWORD_ENV, raising=False)
    assert orders_service(Host(), config, storage).address is None
    monkeypatch.setenv(keys.PASSWORD_ENV, "pw")
    desk = orders_service(Host(), config, storage)
    assert desk.address == ADDR
    monkeypatch.setenv(keys.PASSWORD_ENV, "wrong")
    with pytest.raises(UserError):
        orders_service(Host(), config, storage)
