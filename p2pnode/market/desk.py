"""The order desk, the daemon's `orders` service: the node's side of the orders topic.

It signs orders with the node's unlocked Ethereum key, publishes them on
`/sonm/orders/1`, books what the gossip router delivers, and re-publishes its own
messages that could not be sent yet (no peers), so an order placed before the mesh
formed still goes out. The HTTP routes (p2pnode/api/orders.py) only translate.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from gossip import codec
from gossip.eip712 import SigningDomain, address_of_key
from gossip.messages import MessageDecodeError, address_hex
from gossip.orders import ORDER_MAX_VALIDITY_SECONDS, Order, OrderCancel
from gossip.quota import QuotaParams
from gossip.topics import ORDERS_TOPIC
from p2pnode.context import NodeContext, need
from p2pnode.errors import LocalError, UserError
from p2pnode.market.book import BookEntry, OrderBook

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], Awaitable[bytes]]


class NoAccountError(UserError):
    """The node has no unlocked Ethereum key, so it cannot sign orders."""


class AlreadyCancelledError(UserError):
    """The order is cancelled already; a second cancel would be signed and gossiped for
    nothing (and would spend a nonce and every peer's bandwidth)."""


class OrderQuotaError(UserError):
    """The account already has as many live orders as every node accepts from one
    signer (gossip.quota.QuotaParams.max_orders_per_author); a new one would be
    ignored by the network, so it is refused here with the reason."""


class OrderDesk:
    """Signs, publishes and books the node's orders; books what gossip delivers.

    `publish` is the pubsub driver's `publish(topic, data) -> msg id` (it raises
    gossip.router.PublishError, a LocalError, when no peer can take the message);
    `accepted` is the validator's `pop_accepted`, so a delivered order is not
    decoded and hashed twice.
    """

    def __init__(
        self,
        book: OrderBook,
        domain: SigningDomain,
        *,
        private_key: bytes | None,
        publish: Publish | None,
        accepted: Callable[[bytes], Any] | None = None,
        clock: Callable[[], float] = time.time,
        republish_interval: float = 5.0,
    ) -> None:
        domain.validate()
        if not republish_interval > 0:
            raise ValueError(f"republish_interval: must be > 0 s, got {republish_interval}")
        self.book = book
        self.domain = domain
        self._key = private_key
        self.address = address_of_key(private_key) if private_key is not None else None
        self._publish = publish
        self._accepted = accepted
        self.clock = clock
        self.republish_interval = republish_interval
        self.max_live_orders = QuotaParams().max_orders_per_author
        self.delivered = 0
        self.bad_deliveries = 0
        # the last delivery: (data, message, the order's id if the book took it now,
        # else None; None for a cancel), so the market service, called after us for the
        # same delivery, need not decode and hash it again, and indexes only what the
        # book holds (its caps bound the index too)
        self.last_delivery: tuple[bytes, Order | OrderCancel, bytes | None] | None = None
        self._last_nonce = -1

    def _nonce(self, author: bytes, now: float) -> int:
        """Unique and rising per author, across restarts (the book) and within one ms."""
        nonce = max(self.book.next_nonce(author, now), self._last_nonce + 1)
        self._last_nonce = nonce
        return nonce

    def _require_key(self) -> tuple[bytes, bytes]:
        if self._key is None or self.address is None:
            raise NoAccountError(
                "this node has no unlocked Ethereum account: create one with "
                "`sonm-p2p keys new` and start the node with SONM_KEY_PASSWORD set"
            )
        return self._key, self.address

    async def _send(self, data: bytes) -> str | None:
        """Publish; None on success, else why not (the message stays queued to retry)."""
        if self._publish is None:
            return "the node has no pubsub service"
        try:
            await self._publish(ORDERS_TOPIC, data)
        except LocalError as exc:
            return str(exc) or type(exc).__name__
        return None

    async def place(self, make: Callable[[bytes, int, int], Order]) -> tuple[BookEntry, str | None]:
        """Sign and publish the order `make(author, nonce, now)` builds."""
        key, author = self._require_key()
        now = self.clock()
        live = self.book.own_live(author, now)
        if live >= self.max_live_orders:
            raise OrderQuotaError(
                f"account {address_hex(author)} has {live} live orders, the most one signer "
                f"may have ({self.max_live_orders}): cancel one or let one expire first"
            )
        order = make(author, self._nonce(author, now), math.floor(now))
        signed = order.signed(self.domain, key)
        data = codec.encode(signed)
        order_id = signed.order_id(self.domain)
        self.book.add(signed, order_id, data, now, own=True, published=False)
        error = await self._send(data)
        if error is None:
            self.book.mark_published(order_id)
        entry = self.book.get(order_id)
        assert entry is not None
        return entry, error

    async def cancel(self, order_id: bytes) -> tuple[BookEntry, str | None]:
        key, author = self._require_key()
        entry = self.book.get(order_id)
        if entry is None:
            raise KeyError(order_id)
        if entry.order.author != author:
            raise UserError(
                f"order 0x{order_id.hex()} belongs to {address_hex(entry.order.author)}, "
                f"not to this node's account {address_hex(author)}"
            )
        if entry.cancelled:
            raise AlreadyCancelledError(f"order 0x{order_id.hex()} is cancelled already")
        now = self.clock()
        until = entry.order.valid_until
        start = min(max(math.floor(now), until - ORDER_MAX_VALIDITY_SECONDS), until - 1)
        cancel = OrderCancel(
            author=author,
            order_id=order_id,
            nonce=self._nonce(author, now),
            valid_from=start,
            valid_until=until,
        ).signed(self.domain, key)
        data = codec.encode(cancel)
        self.book.apply_cancel(cancel, data, now, own=True, published=False)
        error = await self._send(data)
        if error is None:
            self.book.mark_published(order_id, cancel=True)
        updated = self.book.get(order_id)
        assert updated is not None
        return updated, error

    def on_delivery(self, topic: str, data: bytes) -> None:
        """Book an order or cancellation the router accepted (already validated)."""
        if topic != ORDERS_TOPIC:
            return
        verdict = self._accepted(data) if self._accepted is not None else None
        msg = getattr(verdict, "message", None)
        try:
            if msg is None:
                msg = codec.decode(data)
        except MessageDecodeError:
            self.bad_deliveries += 1
            return
        now = self.clock()
        if isinstance(msg, Order):
            order_id = getattr(verdict, "digest", None) or msg.order_id(self.domain)
            added = self.book.add(msg, order_id, data, now, own=False, published=True)
            self.last_delivery = (data, msg, order_id if added else None)
        elif isinstance(msg, OrderCancel):
            self.book.apply_cancel(msg, data, now, own=False, published=True)
            self.last_delivery = (data, msg, None)
        else:
            self.bad_deliveries += 1
            return
        self.delivered += 1

    async def republish_once(self) -> int:
        """Send own messages that could not go out before; returns how many went now."""
        sent = 0
        for order_id, data, is_cancel in self.book.unpublished(self.clock()):
            if await self._send(data) is None:
                self.book.mark_published(order_id, cancel=is_cancel)
                sent += 1
        return sent

    def stats(self) -> dict[str, float]:
        """The book's size and what its caps refused, exported on /metrics."""
        from p2pnode.metrics import dataclass_numbers

        out = dataclass_numbers(self.book.counters, "book_")
        out["book_orders"] = float(self.book.count())
        out["book_cancels"] = float(self.book.cancel_count())
        out["delivered"] = float(self.delivered)
        out["bad_deliveries"] = float(self.bad_deliveries)
        return out

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(self.republish_interval)
            try:
                await self.republish_once()
                self.book.prune(self.clock())
            except (LocalError, sqlite3.Error) as exc:  # a full disk must not stop the node
                log.warning("orders upkeep failed: %s", exc)


def orders_service(ctx: NodeContext) -> OrderDesk:
    """Daemon service factory: requires pubsub; signs with the daemon's account.

    Without an unlocked account the desk is read-only: it lists orders and refuses
    to place them (NoAccountError says how to get one).
    """
    pubsub = need("orders", ctx.pubsub, "pubsub")
    desk = OrderDesk(
        OrderBook(ctx.storage),
        SigningDomain(chain_id=ctx.config.chain.chain_id),
        private_key=ctx.account.private_key if ctx.account is not None else None,
        publish=pubsub.publish,
        accepted=pubsub.pop_accepted,
    )
    pubsub.on_delivery(ORDERS_TOPIC, desk.on_delivery)
    return desk
