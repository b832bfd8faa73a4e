"""The web view's HTTP side without a daemon: the login code for a cookie, what the
cookie may do, the page's files and headers, the live feed's cap, and the pure
diff the feed sends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from p2pnode.api.app import build_app
from p2pnode.api.auth import load_or_create_token
from p2pnode.api.state import NodeState
from p2pnode.api.ui_auth import CODE_TTL, MAX_CODES, MAX_SESSIONS, SESSION_TTL, UiSessions
from p2pnode.config import NodeConfig
from p2pnode.liveview import StreamSlots, ViewParams, diff, read_view
from p2pnode.metrics import NodeMetrics
from p2pnode.storage import Storage


@pytest.fixture
def app_token(tmp_path: Path) -> tuple[TestClient, str]:
    storage = Storage.open_in(tmp_path)
    storage.upsert_peer("PeerA", ["/ip4/127.0.0.1/tcp/1"], source="px", record=b"r", seq=1)
    state = NodeState(config=NodeConfig(), storage=storage, metrics=NodeMetrics(), peer_id="Me")
    token = load_or_create_token(tmp_path)
    return TestClient(build_app(state, token), follow_redirects=False), token


def _login(c: TestClient, token: str) -> str:
    got = c.post("/ui/login-code", headers={"Authorization": f"Bearer {token}"})
    assert got.status_code == 200, got.text
    assert got.json()["expires_in"] == CODE_TTL
    path = str(got.json()["path"])
    assert path.startswith("/ui/login?code=") and token not in path
    return path


def test_the_page_is_refused_without_a_token_or_session(
    app_token: tuple[TestClient, str],
) -> None:
    c, _ = app_token
    for path in ("/ui/", "/ui/app.js", "/ui/events", "/ui/login?code=guess", "/ui/login"):
        r = c.get(path)
        assert r.status_code == 401, path
        assert "sonm-p2p ui" in r.text and "app.js" not in r.text
    assert c.post("/ui/login-code").status_code == 401
    assert c.get("/peers").status_code == 401


def test_a_login_code_becomes_a_read_only_session_once(app_token: tuple[TestClient, str]) -> None:
    c, token = app_token
    path = _login(c, token)
    r = c.get(path)
    assert r.status_code == 303 and r.headers["location"] == "/ui/"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("sonm_ui_80=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert token not in cookie
    # the cookie reads the page and the API's GET endpoints ...
    page = c.get("/ui/")
    assert page.status_code == 200 and '<script src="/ui/app.js"' in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert c.get("/ui/app.js").headers["content-type"].startswith("text/javascript")
    assert c.get("/peers").json()["known"] == 1
    # ... and nothing else: a write or a new code still needs the token
    assert c.post("/ui/login-code").status_code == 401
    assert c.post("/orders", json={}).status_code == 401
    # the code is spent: a second browser gets nothing from it
    other = TestClient(c.app, follow_redirects=False)
    assert other.get(path).status_code == 401
    assert other.get("/ui/").status_code == 401
    # a cookie for another port (another node on this machine) is not this one's
    other.cookies.set("sonm_ui_81", c.cookies["sonm_ui_80"])
    assert other.get("/ui/").status_code == 401
    # a wrong bearer token is refused even with a good cookie
    assert c.get("/peers", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert c.get("/ui/nope").status_code == 404


def test_ui_routes_are_not_in_the_api_document(app_token: tuple[TestClient, str]) -> None:
    c, token = app_token
    doc = c.get("/openapi.json", headers={"Authorization": f"Bearer {token}"}).json()
    assert "/peers" in doc["paths"]
    assert not [p for p in doc["paths"] if p.startswith("/ui")]


def test_codes_and_sessions_expire_and_are_capped() -> None:
    now = [0.0]
    s = UiSessions(clock=lambda: now[0])
    code = s.new_code()
    now[0] = CODE_TTL + 0.1
    assert s.redeem(code) is None
    codes = [s.new_code() for _ in range(MAX_CODES + 5)]
    assert s.counts()[0] == MAX_CODES
    assert s.redeem(codes[0]) is None  # the oldest went first
    session = s.redeem(codes[-1])
    assert session is not None and s.valid(session) and s.redeem(codes[-1]) is None
    for _ in range(MAX_SESSIONS):
        assert s.redeem(s.new_code()) is not None
    assert s.counts()[1] == MAX_SESSIONS and not s.valid(session)
    latest = s.redeem(s.new_code())
    assert latest is not None
    now[0] += SESSION_TTL
    assert not s.valid(latest) and s.counts()[1] == 0


def test_event_streams_are_capped(app_token: tuple[TestClient, str]) -> None:
    c, token = app_token
    c.app.state.ui_streams = StreamSlots(0)  # type: ignore[attr-defined]
    r = c.get("/ui/events", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 503 and "0 event streams" in r.json()["detail"]
    slots = StreamSlots(2)
    assert slots.take() and slots.take() and not slots.take()
    slots.give()
    assert slots.take()


def test_the_feed_opens_with_a_snapshot(app_token: tuple[TestClient, str]) -> None:
    c, token = app_token
    with c.stream("GET", "/ui/events", headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        assert next(lines) == "event: snapshot"
        data = next(lines)
    assert data.startswith("data: ") and '"PeerA"' in data and '"peer_id":"Me"' in data


def test_diff_sends_only_what_changed() -> None:
    old = {"peers": {"a": {"connected": True}, "b": {"connected": True}}, "deals": {}}
    new = {
        "peers": {"a": {"connected": True}, "b": {"connected": False}, "c": {"connected": True}},
        "deals": {},
        "orders": {"0x1": {"side": "bid"}},
    }
    assert diff(old, old) == []
    assert diff(old, new) == [
        {
            "section": "peers",
            "set": {"b": {"connected": False}, "c": {"connected": True}},
            "del": [],
        },
        {"section": "orders", "set": {"0x1": {"side": "bid"}}, "del": []},
    ]
    assert diff(new, old) == [
        {"section": "peers", "set": {"b": {"connected": True}}, "del": ["c"]},
        {"section": "orders", "set": {}, "del": ["0x1"]},
    ]


def test_a_node_without_services_shows_empty_sections(tmp_path: Path) -> None:
    state = NodeState(
        config=NodeConfig(), storage=Storage.open_in(tmp_path), metrics=NodeMetrics(), peer_id="Me"
    )
    view = read_view(state, ViewParams(), lambda raw: raw.hex())
    assert view["node"]["self"]["peer_id"] == "Me"
    assert view["peers"] == view["mesh"] == view["orders"] == view["deals"] == {}


@pytest.mark.parametrize(
    ("field", "value"), [("max_peers", 0), ("max_streams", 100_001), ("interval", 0.0)]
)
def test_view_params_name_the_bad_one(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"liveview.{field} = "):
        ViewParams(**{field: value}).validate()  # type: ignore[arg-type]


def test_the_ui_command_says_when_no_node_ran_in_the_data_dir(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    got = run_cli("ui", "--data-dir", str(tmp_path))
    assert got.returncode == 2 and got.stdout == ""
    assert f"no API token in {tmp_path}" in got.stderr


# -- what the sections say: roles, the second ring, figures --------------------------


def _bare_host() -> Any:
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair

    from p2pnode.host import muxer_options, security_options

    kp = create_new_key_pair()
    return new_host(key_pair=kp, sec_opt=security_options(kp), muxer_opt=muxer_options())


def _pid() -> str:
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.id import ID

    return ID.from_pubkey(create_new_key_pair().public_key).to_base58()


def test_peers_carry_their_role_and_how_it_is_known(tmp_path: Path) -> None:
    """A peer's own word in px beats a seed listing; neighbours' hearsay fills in
    only where they agree; peers only named by a neighbour make the second ring."""
    from types import SimpleNamespace

    from libp2p.peer.id import ID

    from p2pnode.config import build_config
    from p2pnode.discovery import Discovery
    from p2pnode.keys import load_or_create_identity

    seed, hub, told, far, split, me = (_pid() for _ in range(6))
    boot = [f"/ip4/127.0.0.1/tcp/1/p2p/{seed}"]
    config = build_config([{"node.data_dir": str(tmp_path), "network.bootstrap": boot}])
    storage = Storage.open_in(tmp_path)
    for pid in (seed, hub, told):
        storage.upsert_peer(pid, ["/ip4/127.0.0.1/tcp/2"], source="px", record=b"r", seq=1)
    disc = Discovery(
        _bare_host(), config, storage, NodeMetrics(), load_or_create_identity(tmp_path)
    )
    disc.roles = {told: "worker", seed: "seed"}
    disc.named_by = {seed: (hub, far, split), told: (far, split)}
    disc.named_roles = {
        seed: {hub: "consumer", far: "consumer", split: "worker"},
        told: {far: "consumer", split: "consumer"},
    }
    # the hub's signed announcement names it a supplier (beats a neighbour's word)
    rep = SimpleNamespace(meta={b"w": SimpleNamespace(peer_id=ID.from_base58(hub).to_bytes())})
    state = NodeState(
        config=config,
        storage=storage,
        metrics=NodeMetrics(),
        peer_id=me,
        discovery=disc,
        services={"reputation": rep},
    )
    peers = read_view(state, ViewParams(), lambda raw: ID(raw).to_base58())["peers"]
    assert (peers[told]["role"], peers[told]["role_from"]) == ("worker", "itself")
    assert (peers[seed]["role"], peers[seed]["role_from"]) == ("seed", "itself")
    assert (peers[hub]["role"], peers[hub]["role_from"]) == ("supplier", "announcement")
    # only named: second ring, the role as both neighbours told it
    assert peers[far]["source"] == "named" and not peers[far]["connected"]
    assert (peers[far]["role"], peers[far]["role_from"]) == ("consumer", "neighbour")
    assert peers[far]["named_by"] == sorted([seed, told])
    assert peers[split]["role"] is None  # the neighbours disagree: not known
    assert peers[seed]["sees"] == [hub, far, split]
    assert me not in peers
    disc.roles = {}
    again = read_view(state, ViewParams(), lambda raw: ID(raw).to_base58())["peers"]
    assert (again[seed]["role"], again[seed]["role_from"]) == ("seed", "config")
    # the section stays capped with the second ring in it
    capped = read_view(state, ViewParams(max_peers=4), lambda raw: ID(raw).to_base58())
    assert len(capped["peers"]) == 4


def test_orders_per_second_over_a_window() -> None:
    from p2pnode.liveview import OrderRate

    rate = OrderRate(window=10.0)
    assert rate.add(100.0, 0) is None  # one reading is no rate
    assert rate.add(100.5, 3) is None  # nor two within a second
    assert rate.add(102.0, 20) == 10.0
    for t in range(3, 30):  # 5 orders/s for a while: the early burst leaves the window
        assert rate.add(100.0 + t, 20 + 5 * (t - 2)) is not None
    assert rate.add(130.0, 20 + 5 * 28) == pytest.approx(5.0)
    assert len(rate._samples) <= 12


def test_the_book_spread_and_bid_to_deal_times(tmp_path: Path) -> None:
    from gossip import codec, eip712
    from gossip.eip712 import SigningDomain
    from gossip.orders import Order, Side
    from p2pnode.liveview import _deal_times, _spread
    from p2pnode.market.book import OrderBook
    from p2pnode.market.dealstore import DealRow, MarketStore

    key, domain, t0 = bytes.fromhex("22" * 32), SigningDomain(chain_id=31337), 1_700_000_000
    storage = Storage.open_in(tmp_path)
    book = OrderBook(storage)
    assert _spread(book, t0) == {"best_ask": None, "best_bid": None, "spread": None, "orders": 0}

    def add(side: Side, price: int, nonce: int, placed: int = t0) -> bytes:
        order = Order.create(
            author=eip712.address_of_key(key),
            side=side,
            price_per_hour=price,
            duration=1800,
            nonce=nonce,
            valid_from=placed,
            valid_until=placed + 3600,
        ).signed(domain, key)
        oid = order.order_id(domain)
        book.add(order, oid, codec.encode(order), t0, own=True, published=True)
        return oid

    add(Side.ASK, 9 * 10**17, 1)
    add(Side.ASK, 7 * 10**17, 2)
    add(Side.BID, 5 * 10**17, 3)
    bid = add(Side.BID, 6 * 10**17, 4, placed=t0 + 10)
    got = _spread(book, t0 + 20)
    assert got["best_ask"] == str(7 * 10**17) and got["best_bid"] == str(6 * 10**17)
    assert got["spread"] == str(10**17) and got["orders"] == 4

    store = MarketStore(storage)

    def deal(deal_id: int, status: str, bid_id: bytes | None, proposed: int, start: int) -> None:
        store.upsert_deal(
            DealRow(deal_id, "consumer", "0x" + "11" * 20, "0x" + "22" * 20, b"a" * 32,
                    bid_id, None, 1, 600, 600, status, proposed, start, 0, 0, 0, 0.0)
        )  # fmt: skip

    deal(1, "accepted", bid, t0 + 13, t0 + 17)
    deal(2, "pending", bid, t0 + 14, 0)
    deal(3, "closed", b"z" * 32, t0 + 1, t0 + 2)  # its BID is not in the book
    times = _deal_times(store, book)
    assert times["by_status"] == {"accepted": 1, "closed": 1, "pending": 1}
    assert times["bid_to_deal"] == [
        {"deal_id": 1, "to_proposal_s": 3, "to_accept_s": 7},
        {"deal_id": 2, "to_proposal_s": 4, "to_accept_s": None},
    ]
