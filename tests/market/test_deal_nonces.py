"""A signed deal request is good once: the hub refuses the same request again, also
after a restart (the spent nonces are in SQLite), until it expires anyway."""

from __future__ import annotations

from pathlib import Path

from eth_account import Account

from gossip.eip712 import SigningDomain
from gossip.replay import ReplayGuard
from p2pnode.market import dealwire
from p2pnode.market.dealnonces import RequestNonceParams, RequestNonces, next_nonce
from p2pnode.market.dealsvc import MarketParams, MarketService
from p2pnode.replay_store import ReplayStore
from p2pnode.storage import Storage

DOMAIN = SigningDomain(chain_id=31337)
KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
ME = bytes.fromhex(Account.from_key(KEY).address[2:])
T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _hub(storage: Storage, clock: Clock, tmp_path: Path) -> MarketService:
    return MarketService(
        None,
        storage,
        None,
        None,
        hub_wallet=None,
        data_dir=tmp_path,
        params=MarketParams(),
        addrs=list,
        clock=clock,
    )


def _request(nonce: int, valid_until: int) -> dealwire.DealRequest:
    req = dealwire.DealRequest(ME, b"\x01" * 32, b"\x02" * 32, nonce, valid_until)
    signed = dealwire.sign(req, DOMAIN, KEY)
    # as the hub gets it: off the wire, signature checked
    [payload] = dealwire.FrameReader().feed(dealwire.frame(signed))
    return dealwire.decode(payload, DOMAIN, expect=dealwire.DealRequest)  # type: ignore[no-any-return]


def test_a_replayed_request_is_refused_also_after_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    storage = Storage.open_in(tmp_path)
    hub = _hub(storage, clock, tmp_path)
    req = _request(7, int(T0) + 60)
    # the first time it passes the replay check (and is refused further on: this
    # node sells nothing); the second time it is a replay
    assert hub._check_request(req) == (None, "this node sells nothing")
    slot, why = hub._check_request(req)
    assert slot is None and why.startswith("request replayed: nonce 7"), why
    assert hub.counters["replayed"] == 1
    # the same consumer's next nonce is fresh
    assert hub._check_request(_request(8, int(T0) + 60))[1] == "this node sells nothing"
    storage.close()

    clock.now += 30  # a kill -9 and a restart, within the request's window
    reopened = Storage.open_in(tmp_path)
    restarted = _hub(reopened, clock, tmp_path)
    assert restarted.request_nonces.loaded == 2
    for nonce in (7, 8):
        slot, why = restarted._check_request(_request(nonce, int(T0) + 60))
        assert why.startswith(f"request replayed: nonce {nonce}"), why
    # the gossip guard's table holds none of them
    assert ReplayStore(reopened).load_into(ReplayGuard(), clock.now) == 0

    # at valid_until the window still lets it in, and it is still spent; past it, the
    # window refuses it and the spent nonce is forgotten (memory stays bounded)
    clock.now = T0 + 60
    assert restarted._check_request(_request(7, int(T0) + 60))[1].startswith("request replayed")
    clock.now = T0 + 62
    assert restarted._check_request(_request(7, int(T0) + 60))[1] == "request expired"
    restarted.request_nonces.guard.expire(clock.now)
    assert len(restarted.request_nonces.guard) == 0
    reopened.close()


def test_spent_nonces_are_capped(tmp_path: Path) -> None:
    storage = Storage.open_in(tmp_path)
    nonces = RequestNonces(storage, T0, RequestNonceParams(max_entries=8, max_per_key=4))
    for n in range(1, 20):
        assert nonces.admit(_request(n, int(T0) + 60), T0) is None
    assert len(nonces.guard) <= 8
    # folding keeps it safe: every spent nonce is still refused
    for n in range(1, 20):
        assert nonces.admit(_request(n, int(T0) + 60), T0) is not None
    storage.close()


def test_a_consumer_never_sends_the_same_nonce_twice() -> None:
    first = next_nonce(0, T0)
    assert first == int(T0 * 1000)
    assert next_nonce(first, T0) == first + 1  # the same millisecond
    assert next_nonce(first, T0 + 1) == first + 1000
