"""The market service's ASK index, fed the way the daemon feeds it: the book's live
ASKs at start, then what the orders topic delivers (booked by the desk first), with
expiry every tick; matching reads the winner back from the real SQLite book."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gossip import codec, eip712
from gossip.eip712 import SigningDomain
from gossip.orders import Order, OrderCancel, Side
from gossip.topics import ORDERS_TOPIC
from p2pnode.errors import UserError
from p2pnode.market.book import BookLimits, OrderBook
from p2pnode.market.dealsvc import MarketParams, MarketService
from p2pnode.market.desk import OrderDesk
from p2pnode.storage import Storage

DOMAIN = SigningDomain(chain_id=31337)
ME = bytes.fromhex("11" * 32)
HUB = bytes.fromhex("22" * 32)
HUB2 = bytes.fromhex("33" * 32)
T0 = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _signed(key: bytes, side: Side, nonce: int, **kw: Any) -> tuple[Order, bytes, bytes]:
    args: dict[str, Any] = dict(
        author=eip712.address_of_key(key),
        side=side,
        price_per_hour=3600 * 10,
        duration=3600,
        nonce=nonce,
        valid_from=int(T0),
        valid_until=int(T0) + 3600,
        cpu_cores=4,
    )
    args.update(kw)
    order = Order.create(**args).signed(DOMAIN, key)
    return order, order.order_id(DOMAIN), codec.encode(order)


def _world(
    tmp_path: Path, limits: BookLimits | None = None
) -> tuple[MarketService, OrderDesk, Clock]:
    clock = Clock()
    storage = Storage.open_in(tmp_path)
    book = OrderBook(storage, limits=limits)
    desk = OrderDesk(book, DOMAIN, private_key=ME, publish=None, clock=clock)
    svc = MarketService(
        None,
        storage,
        desk,
        None,
        hub_wallet=None,
        data_dir=tmp_path,
        params=MarketParams(),
        addrs=list,
        private_key=ME,
        clock=clock,
    )
    return svc, desk, clock


def _deliver(svc: MarketService, desk: OrderDesk, data: bytes) -> None:
    """What the pubsub driver does: every handler of the topic, in registration order."""
    desk.on_delivery(ORDERS_TOPIC, data)
    svc.on_delivery(ORDERS_TOPIC, data)


def _winners(svc: MarketService) -> list[bytes]:
    return [ask.order_id for _, ask in svc._matches()]


def test_delivered_cancelled_and_expired_asks(tmp_path: Path) -> None:
    svc, desk, clock = _world(tmp_path)
    bid, bid_id, bid_data = _signed(ME, Side.BID, 1, price_per_hour=3600 * 20, cpu_cores=2)
    desk.book.add(bid, bid_id, bid_data, T0, own=True, published=True)
    # in the book before the service starts: loaded from SQLite
    old, old_id, old_data = _signed(HUB, Side.ASK, 1, price_per_hour=3600 * 15)
    desk.book.add(old, old_id, old_data, T0, own=False, published=True)
    _, _, too_small = _signed(HUB, Side.ASK, 2, price_per_hour=3600, cpu_cores=1)
    _deliver(svc, desk, too_small)  # before the load: indexed once all the same
    assert svc.load_index() == 1
    assert len(svc.index) == 2
    assert _winners(svc) == [old_id]

    # a cheaper ASK arrives by gossip: it wins
    cheap, cheap_id, cheap_data = _signed(
        HUB2, Side.ASK, 1, price_per_hour=3600 * 12, valid_until=int(T0) + 60
    )
    _deliver(svc, desk, cheap_data)
    assert cheap_id in svc.index and _winners(svc) == [cheap_id]

    # cancelled by its author: out of the index, the older ASK wins again
    cancel = OrderCancel(
        author=cheap.author,
        order_id=cheap_id,
        nonce=1,
        valid_from=int(T0),
        valid_until=int(T0) + 60,
    ).signed(DOMAIN, HUB2)
    _deliver(svc, desk, codec.encode(cancel))
    assert cheap_id not in svc.index and _winners(svc) == [old_id]

    # a second cheap ASK, then its window ends: expired at the next tick
    _, late_id, late_data = _signed(
        HUB2, Side.ASK, 2, price_per_hour=3600 * 11, valid_until=int(T0) + 60
    )
    _deliver(svc, desk, late_data)
    assert _winners(svc) == [late_id]
    clock.now = T0 + 61
    assert _winners(svc) == [old_id]
    assert late_id not in svc.index

    # a stranger's cancel of the older ASK is refused by the index and the book
    forged = OrderCancel(
        author=eip712.address_of_key(HUB2),
        order_id=old_id,
        nonce=2,
        valid_from=int(T0),
        valid_until=int(T0) + 600,
    ).signed(DOMAIN, HUB2)
    _deliver(svc, desk, codec.encode(forged))
    assert _winners(svc) == [old_id]


def test_refused_winner_falls_back_to_the_next_ask(tmp_path: Path) -> None:
    svc, desk, clock = _world(tmp_path)
    bid, bid_id, bid_data = _signed(ME, Side.BID, 1, price_per_hour=3600 * 20)
    desk.book.add(bid, bid_id, bid_data, T0, own=True, published=True)
    _, a_id, a_data = _signed(HUB, Side.ASK, 1, price_per_hour=3600 * 12)
    _, b_id, b_data = _signed(HUB2, Side.ASK, 1, price_per_hour=3600 * 14)
    # the node's own ASK, cheapest of all, never serves its own BID
    own, own_id, own_data = _signed(ME, Side.ASK, 2, price_per_hour=3600)
    desk.book.add(own, own_id, own_data, T0, own=True, published=True)
    assert svc.load_index() == 0
    for data in (a_data, b_data):
        _deliver(svc, desk, data)
    assert own_id not in svc.index
    assert _winners(svc) == [a_id]
    svc._refused[a_id] = T0 + 30
    assert _winners(svc) == [b_id]
    clock.now = T0 + 31  # the cooldown is over
    assert _winners(svc) == [a_id]


def test_winner_gone_from_the_book_leaves_the_index(tmp_path: Path) -> None:
    """The book may evict an ASK the index still holds: the next winner is taken."""
    svc, desk, _ = _world(tmp_path)
    bid, bid_id, bid_data = _signed(ME, Side.BID, 1, price_per_hour=3600 * 20)
    desk.book.add(bid, bid_id, bid_data, T0, own=True, published=True)
    _, a_id, a_data = _signed(HUB, Side.ASK, 1, price_per_hour=3600 * 12)
    _, b_id, b_data = _signed(HUB2, Side.ASK, 1, price_per_hour=3600 * 14)
    for data in (a_data, b_data):
        _deliver(svc, desk, data)
    desk.book._exec("DELETE FROM gossip_orders WHERE order_id = ?", (a_id,))
    assert _winners(svc) == [b_id]
    assert a_id not in svc.index


def test_explain_over_the_index(tmp_path: Path) -> None:
    svc, desk, _ = _world(tmp_path)
    bid, bid_id, bid_data = _signed(ME, Side.BID, 1, price_per_hour=3600 * 20, cpu_cores=8)
    desk.book.add(bid, bid_id, bid_data, T0, own=True, published=True)
    _, ok_id, ok_data = _signed(HUB, Side.ASK, 1, price_per_hour=3600 * 12, cpu_cores=8)
    _, _, dear = _signed(HUB, Side.ASK, 2, price_per_hour=3600 * 30, cpu_cores=8)
    _, _, small = _signed(HUB2, Side.ASK, 1, price_per_hour=3600 * 12, cpu_cores=2)
    _, _, both = _signed(HUB2, Side.ASK, 2, price_per_hour=3600 * 30, cpu_cores=2)
    for data in (ok_data, dear, small, both):
        _deliver(svc, desk, data)
    entry, why = svc.explain_bid(bid_id)
    assert entry.order_id == bid_id
    assert (why.total, why.matching) == (4, 1)
    assert why.ruled_out["price"] == 2 and why.only["price"] == 1
    assert why.ruled_out["cpu-cores"] == 2 and why.only["cpu-cores"] == 1
    assert why.winner is not None and why.winner.order_id == ok_id
    with pytest.raises(UserError, match="only a BID"):
        svc.explain_bid(ok_id)
    with pytest.raises(KeyError):
        svc.explain_bid(b"\x00" * 32)


def test_the_index_holds_no_more_than_the_book(tmp_path: Path) -> None:
    """An ASK the book refuses (its author's quota) stays out of the index; ASKs the
    book evicted under its cap are dropped by a rebuild once the index is a quarter
    over the book's cap."""
    limits = BookLimits(max_orders=8, max_orders_per_author=3)
    svc, desk, _ = _world(tmp_path, limits)
    svc.load_index()
    keys = [bytes([k]) * 32 for k in range(0x40, 0x50)]
    for nonce in range(1, 5):  # the fourth is over the author's quota
        _deliver(svc, desk, _signed(keys[0], Side.ASK, nonce)[2])
    assert len(svc.index) == 3 and desk.book.count() == 3
    sizes = []
    for key in keys[1:]:  # one ASK each from 15 more authors: the book evicts
        _deliver(svc, desk, _signed(key, Side.ASK, 1)[2])
        sizes.append(len(svc.index))
        assert len(svc.index) <= 10  # the cap (8) and a quarter
        assert desk.book.count() <= 8
    assert 10 in sizes and sizes[-1] < 10  # reached the bound, and was rebuilt
    live = {e.order_id for batch in desk.book.live(Side.ASK, T0) for e in batch}
    assert all(order_id in svc.index for order_id in live)


def test_loading_lets_deliveries_in_between_batches(tmp_path: Path) -> None:
    """The daemon loads the index batch by batch; an ASK and a cancel delivered while
    it loads end up as if they had come after it."""
    import trio

    svc, desk, _ = _world(tmp_path)
    ids = []
    for nonce in range(1, 6):
        order, order_id, data = _signed(HUB, Side.ASK, nonce, price_per_hour=3600 * nonce)
        desk.book.add(order, order_id, data, T0, own=False, published=True)
        ids.append(order_id)
    _, new_id, new_data = _signed(HUB2, Side.ASK, 1)
    cancels = [
        OrderCancel(
            author=eip712.address_of_key(HUB),
            order_id=order_id,
            nonce=k,
            valid_from=int(T0),
            valid_until=int(T0) + 600,
        ).signed(DOMAIN, HUB)
        for k, order_id in enumerate(ids, 1)
    ]

    async def main() -> int:
        async with trio.open_nursery() as nursery:
            box: list[int] = []

            async def load() -> None:
                box.append(await svc.load_index_async(batch=2))

            nursery.start_soon(load)
            await trio.sleep(0)  # the loader has read one batch
            _deliver(svc, desk, new_data)
            for cancel in cancels:  # every ASK of the book: loaded or not yet
                _deliver(svc, desk, codec.encode(cancel))
        return box[0]

    added = trio.run(main)
    assert added <= 2  # batches after the cancels find nothing live
    assert new_id in svc.index and len(svc.index) == 1
    assert svc.load_index() == 0  # once
