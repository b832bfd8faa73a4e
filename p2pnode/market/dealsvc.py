"""The daemon's `market` service: slots become ASKs, BIDs find ASKs, and the two
nodes turn a match into an accepted deal on the Deals registry.

Supplier (a node with `market.hub_wallet`): every free slot has a signed ASK on the
orders topic, re-placed before it expires; a deal on the slot withdraws it (signed
cancel) and the deal's end places a fresh one. The hub answers `/sonm/deal/1`
requests with a reservation (p2pnode/market/reservations.py), accepts on chain the
proposal that matches it, and closes its deals when they end.

Consumer (any node with an account): each own open BID is matched against the
service's ASK index (`p2pnode.market.matching.AskIndex`: loaded from the book's live
ASKs at start, fed by every ASK and cancel gossip delivers, expired every tick)
whenever an ASK arrives and every tick; when the index's winner is an ASK that said
no a moment ago (the refusal cooldown), that BID alone falls back to the scan over
the book (`p2pnode.market.pick.find_best_ask`), which applies the same rule;
the best ASK's hub is asked for a reservation, the consumer escrows and proposes on
chain, tells the hub the deal id, and withdraws the BID once the hub accepted. A
proposal not accepted within `market.accept_timeout` is cancelled (escrow back).

Both sides mirror their deals from the registry's events, read by bounded block
ranges from the last block seen (kept in SQLite): a restart after a kill -9 at any
step re-reads what happened meanwhile and carries on from the chain's state.
Blocking JSON-RPC runs in worker threads, one transaction at a time per node.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr

from gossip import codec
from gossip.messages import ZERO_ADDRESS, MessageDecodeError, address_hex
from gossip.orders import BENCHMARK_NAMES, Order, OrderCancel, Side
from gossip.topics import ORDERS_TOPIC
from p2pnode.context import NodeContext, need
from p2pnode.errors import LocalError, RemoteError, UserError
from p2pnode.framestreams import InboundStreams, read_frames
from p2pnode.framestreams import close as _close
from p2pnode.market import dealwire
from p2pnode.market.book import BookEntry, OrderFilter
from p2pnode.market.dealnonces import RequestNonces, next_nonce
from p2pnode.market.dealstore import DealRow, MarketStore
from p2pnode.market.matching import (
    AskIndex,
    Explanation,
    RatingLookup,
    RemoteOrderError,
    explain,
    no_ratings,
)
from p2pnode.market.pick import find_best_ask, why_not
from p2pnode.market.reservations import ReservationParams, Reservations
from p2pnode.market.slots import (
    LOCAL_WORKER,
    Capacity,
    Slot,
    SlotError,
    SlotPlanner,
    slot_benchmarks,
    slot_gpus,
)

log = logging.getLogger(__name__)

PROP_WALLET = "hub-wallet"  # ASK properties that tell a consumer where the hub is
PROP_PEER = "hub-peer"
PROP_ADDR = "hub-addr"
_RESOURCE_NAMES = frozenset(
    {
        "cpu-cores",
        "ram-size",
        "storage-size",
        "gpu-count",
        "gpu-mem",
        "net-download",
        "net-upload",
    }
)
_STATUS = {1: "pending", 2: "accepted", 3: "closed"}


@dataclass(frozen=True)
class MarketParams:
    reservation_ttl: float = 30.0
    accept_timeout: float = 60.0
    ask_validity: int = 600
    ask_refresh_margin: int = 60  # re-place an ASK this long before it expires
    tick: float = 0.25  # how often the chain's events are read
    refuse_cooldown: float = 30.0  # an ASK that said no is not asked again for this long
    stream_timeout: float = 15.0  # one frame on /sonm/deal/1
    max_inbound_streams: int = 64  # deal streams served at once
    max_block_range: int = 2_000

    def validate(self) -> None:
        if not self.ask_refresh_margin * 2 <= self.ask_validity:
            raise ValueError(
                f"ask_refresh_margin = {self.ask_refresh_margin}: allowed <= ask_validity / 2"
            )
        for name in ("tick", "refuse_cooldown", "stream_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be > 0")
        if self.max_inbound_streams < 1 or self.max_block_range < 1:
            raise ValueError("max_inbound_streams, max_block_range: must be >= 1")


class MarketService:
    def __init__(
        self,
        host: Any,
        storage: Any,
        desk: Any,
        system: Any,
        *,
        hub_wallet: str | None,
        data_dir: Path,
        params: MarketParams,
        addrs: Callable[[], list[str]],
        private_key: bytes | None = None,
        hardware: Callable[[], Any] | None = None,
        worker_scores: Callable[[Any], dict[str, int]] | None = None,
        rating: RatingLookup = no_ratings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        params.validate()
        self.host = host
        self.store = MarketStore(storage)
        self.desk = desk
        self.system = system
        self.params = params
        self.clock = clock
        # an order author's rating (basis points) for min_rating: the reputation service's
        self.rating = rating
        self.data_dir = data_dir
        self.hub_wallet = hub_wallet
        self._addrs = addrs
        self._hardware = hardware
        self._worker_scores = worker_scores
        self.reservations = Reservations(
            ReservationParams(ttl=params.reservation_ttl, max_reservations=1024)
        )
        # spent /sonm/deal/1 request nonces (hub side), persisted: a request is good once
        self.request_nonces = RequestNonces(storage, clock())
        self._last_nonce = 0  # consumer side: the last request nonce sent
        self._planner: SlotPlanner | None = None
        self._planner_lock = threading.Lock()
        self._record: Any = None
        # joined remote workers (p2pnode/worker/): their hardware by worker id, set by
        # the workers service; their slots are planned against it
        self.remote_hardware: Callable[[str], Any] | None = None
        # a joined worker's own scores, as it sent them with its join
        self.remote_scores: Callable[[str], dict[str, int]] | None = None
        self._remote_planners: dict[str, SlotPlanner] = {}
        self._records: dict[str, Any] = {}
        key = private_key
        self.key: bytes | None = key
        self.address: bytes | None = getattr(desk, "address", None)
        self.account: Any = None
        if key is not None:
            from eth_account import Account

            self.account = Account.from_key(key)
        self._chain_lock = trio.Lock()
        self._wake = trio.Event()
        self._supplier_wake = trio.Event()
        self._negotiating: set[bytes] = set()  # BIDs being worked on
        self._refused: dict[bytes, float] = {}  # ASK id -> not before
        self._accepting: dict[int, trio.Event] = {}
        self.index = AskIndex()  # the ASKs this node knows, for matching its BIDs
        self._index_loaded = False
        self._inbound = InboundStreams()
        # called with a supplier deal's id each time it is seen closed (the tasks
        # service stops the deal's task there); a failing hook is logged
        self.close_hooks: list[Callable[[int], Awaitable[None]]] = []
        self.counters: dict[str, int] = {
            "requests": 0,
            "refused": 0,
            "bad_messages": 0,
            "replayed": 0,
            "accepted": 0,
            "proposed": 0,
            "cancelled": 0,
            "closed": 0,
            "asks_placed": 0,
            "asks_withdrawn": 0,
        }

    # -- what the API reads -----------------------------------------------------

    def stats(self) -> dict[str, float]:
        out = {k: float(v) for k, v in self.counters.items()}
        out["reservations"] = float(len(self.reservations))
        return out

    @property
    def is_supplier(self) -> bool:
        return self.hub_wallet is not None and self.account is not None and self.system is not None

    # -- slots ------------------------------------------------------------------

    def planner(self) -> SlotPlanner:
        """This node's own slots; the hardware is read once, on first use (any thread)."""
        with self._planner_lock:
            if self._planner is None:
                if self._hardware is None:
                    raise LocalError("this node cannot read its hardware")
                self._record = self._hardware()
                local = [s for s in self.store.slots() if s.worker == LOCAL_WORKER]
                self._planner = SlotPlanner(Capacity.of(self._record), local)
            return self._planner

    def planner_for(self, worker: str) -> SlotPlanner:
        """The slots of one worker: this node's ("") or a joined remote worker's, whose
        capacity is the hardware record it signed when it joined."""
        if worker == LOCAL_WORKER:
            return self.planner()
        with self._planner_lock:
            planner = self._remote_planners.get(worker)
            if planner is None:
                record = self.remote_hardware(worker) if self.remote_hardware else None
                if record is None:
                    raise SlotError(f"no worker {worker} has joined this hub")
                slots = [s for s in self.store.slots() if s.worker == worker]
                planner = SlotPlanner(Capacity.of(record), slots)
                self._remote_planners[worker] = planner
                self._records[worker] = record
            return planner

    def forget_worker(self, worker: str) -> None:
        """A remote worker left: its slots are no longer offered (kept, for its deals)."""
        with self._planner_lock:
            self._remote_planners.pop(worker, None)
            self._records.pop(worker, None)
        self._supplier_wake.set()

    def offered_slots(self) -> list[Slot]:
        """Every slot on a worker that is here now: this node's and joined workers'."""
        out: list[Slot] = list(self.planner().slots) if self._hardware is not None else []
        workers = {s.worker for s in self.store.slots() if s.worker != LOCAL_WORKER}
        for worker in sorted(workers):
            try:
                out.extend(self.planner_for(worker).slots)
            except SlotError:
                continue  # the worker left: its slots wait for it
        return out

    def find_slot(self, slot_id: str) -> Slot | None:
        """A slot by id on any worker, offered or not (a deal outlives its worker's stay)."""
        if self._planner is not None:
            slot = self._planner.get(slot_id)
            if slot is not None:
                return slot
        for slot in self.store.slots():
            if slot.slot_id == slot_id:
                return slot
        return None

    def add_slot(self, slot: Slot) -> Slot:
        if slot.price_per_hour <= 0 or slot.price_per_hour % 3600:
            raise SlotError(
                f"slot price_per_hour = {slot.price_per_hour}: allowed a positive multiple of "
                "3600 wei (the registry charges per second)"
            )
        if self.find_slot(slot.slot_id) is not None:
            raise SlotError(f"slot {slot.slot_id} exists already")
        planner = self.planner_for(slot.worker)
        planner.add(slot)  # raises SlotDoesNotFit naming every shortfall
        try:
            self.store.save_slot(slot, self.clock())
        except Exception:
            planner.remove(slot.slot_id)
            raise
        self._supplier_wake.set()
        return slot

    async def remove_slot(self, slot_id: str) -> Slot:
        slot = self.find_slot(slot_id)
        if slot is None:
            raise SlotError(f"no slot {slot_id!r}")
        if self.reservations.occupied_by(slot_id) is not None:
            raise SlotError(f"slot {slot_id} has a deal running; remove it after the deal ends")
        with contextlib.suppress(SlotError):  # a gone worker's slot is in no planner
            self.planner_for(slot.worker).remove(slot_id)
        self.store.delete_slot(slot_id)
        await self._withdraw_asks(slot_id)
        return slot

    def slot_gpus(self, slot: Slot) -> list[dict[str, object]]:
        """The slot's GPUs with name and memory from its worker's record: this node's
        (read by `planner()`) or the one a joined worker signed; by UUID alone when
        neither is at hand."""
        with self._planner_lock:
            record = self._record if slot.worker == LOCAL_WORKER else self._records.get(slot.worker)
        return [g.to_json() for g in slot_gpus(slot, record)]

    def slot_status(self, slot_id: str) -> dict[str, Any]:
        live = self.store.live_asks(self.clock()).get(slot_id)
        held = self.reservations.get(slot_id)
        return {
            "deal": self.reservations.occupied_by(slot_id),
            "ask_id": "0x" + live[0].hex() if live else None,
            "reserved": held is not None,
        }

    # -- the service --------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        try:
            added = await self.load_index_async()
            log.info("market: %d ASKs of the book indexed", added)
        except Exception as exc:  # a damaged book must not stop the node: matching goes on
            log.warning("market: loading the ASK index failed: %s", exc)
        if self.system is None or self.account is None:
            log.info("market: no chain or no unlocked account, so no deals on this node")
            task_status.started()
            await trio.sleep_forever()
        self._rebuild_occupancy()
        # catch up with the chain before matching or serving: a consumer restarted
        # after `propose` must see that deal before its BID looks free again
        try:
            await self._poll_events()
        except Exception as exc:
            log.warning("market: catching up with the chain failed: %s", exc)
        if self.hub_wallet is not None and self._hardware is not None:
            try:  # the slots must be known before the first request is answered
                await trio.to_thread.run_sync(self.planner)
            except Exception as exc:
                log.warning("market: cannot read this worker's hardware: %s", exc)
        self.host.set_stream_handler(TProtocol(dealwire.PROTOCOL_ID), self._handle_stream)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._chain_loop)
            nursery.start_soon(self._consumer_loop)
            if self.hub_wallet is not None:
                nursery.start_soon(self._supplier_loop)
            task_status.started()

    def on_delivery(self, topic: str, data: bytes) -> None:
        """A new order or cancel arrived (booked by the desk before us): index it, and
        look for matches now."""
        if topic != ORDERS_TOPIC:
            return
        last = getattr(self.desk, "last_delivery", None)
        if last is not None and last[0] == data:
            _, msg, order_id = last
        else:
            try:
                msg = codec.decode(data)
            except MessageDecodeError:
                return
            order_id = msg.order_id(self.desk.domain) if isinstance(msg, Order) else None
            if order_id is not None and self.desk.book.get(order_id) is None:
                order_id = None  # not booked (a cap refused it): not indexed either
        self._feed(msg, order_id)
        if len(self.index) > self._index_cap():
            self._upkeep_index(self.clock())
        self._wake.set()

    def _feed(self, msg: Any, order_id: bytes | None) -> None:
        """One ASK or cancel into the index. The node's own ASKs stay out: they never
        serve its own BIDs."""
        try:
            if isinstance(msg, Order) and order_id is not None:
                if msg.side is Side.ASK and msg.author != self.address:
                    self.index.add(order_id, msg)
            elif isinstance(msg, OrderCancel):
                self.index.cancel(msg.order_id, msg.author)
        except RemoteOrderError as exc:  # signed and valid, but not indexable: skip it
            log.debug("market: not indexed: %s", exc)

    def load_index(self, batch: int = 1000) -> int:
        """Index the book's live ASKs (once); how many were added. Deliveries that came
        first are in already (the index refuses a second copy and remembers cancels)."""
        return sum(self._load_batches(batch))

    async def load_index_async(self, batch: int = 1000) -> int:
        """`load_index`, letting other tasks run between batches: a full book takes
        seconds to decode, and deliveries meanwhile go into the index as usual (an ASK
        twice is refused; a cancel is remembered, and the book marks it cancelled)."""
        added = 0
        for n in self._load_batches(batch):
            added += n
            await trio.sleep(0)
        return added

    def _load_batches(self, batch: int) -> Iterator[int]:
        if self._index_loaded:
            return
        self._index_loaded = True
        for entries in self.desk.book.live(Side.ASK, self.clock(), batch):
            before = len(self.index)
            for entry in entries:
                self._feed(entry.order, entry.order_id)
            yield len(self.index) - before

    def explain_bid(self, order_id: bytes) -> tuple[BookEntry, Explanation]:
        """For one BID: per constraint, how many ASKs of the index it rules out, and the
        winner. KeyError for an unknown id, UserError for an order that is not a BID."""
        entry = self.desk.book.get(order_id)
        if entry is None:
            raise KeyError(order_id)
        if entry.order.side is not Side.BID:
            raise UserError(f"order 0x{order_id.hex()} is an ASK; only a BID is explained")
        self._upkeep_index(self.clock())
        return entry, explain(self.index, entry.order, self.rating)

    def _rebuild_occupancy(self) -> None:
        for row in self.store.deals("accepted"):
            if row.role == "supplier" and row.slot_id:
                self.reservations.occupy(row.slot_id, row.deal_id)

    async def _chain(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A blocking chain call in a worker thread, one per node at a time."""
        async with self._chain_lock:
            return await trio.to_thread.run_sync(lambda: fn(*args, **kwargs))

    async def chain_call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`_chain` for other services (the hub's payouts): the node's transactions
        go one at a time, so two services never race for the account's nonce."""
        return await self._chain(fn, *args, **kwargs)

    # -- supplier: ASKs for free slots -----------------------------------------------

    async def _supplier_loop(self) -> None:
        while True:
            try:
                await self._keep_asks()
            except Exception as exc:  # a full disk or a lost peer must not stop the node
                log.warning("market: ASK upkeep failed: %s", exc)
            with trio.move_on_after(1.0):
                await self._supplier_wake.wait()
            self._supplier_wake = trio.Event()

    async def _keep_asks(self) -> None:
        if self._hardware is None:
            return
        offered = await trio.to_thread.run_sync(self.offered_slots)
        now = self.clock()
        live = self.store.live_asks(now)
        on_offer = {s.slot_id for s in offered}
        for slot_id in live:
            if slot_id not in on_offer and self.reservations.occupied_by(slot_id) is None:
                await self._withdraw_asks(slot_id)  # its worker left, or it was removed
        for slot in offered:
            if self.reservations.occupied_by(slot.slot_id) is not None:
                if slot.slot_id in live:
                    await self._withdraw_asks(slot.slot_id)
                continue
            if slot.available_until and now >= slot.available_until:
                continue
            current = live.get(slot.slot_id)
            if current is not None and current[1] - now > self.params.ask_refresh_margin:
                continue
            await self._place_ask(slot)
            if current is not None:
                await self._cancel_order(current[0])
                self.store.mark_ask_withdrawn(current[0])

    def _ask_properties(self) -> dict[str, str]:
        assert self.hub_wallet is not None
        props = {PROP_WALLET: self.hub_wallet.lower(), PROP_PEER: self.host.get_id().to_base58()}
        addrs = self._addrs()
        if addrs:
            props[PROP_ADDR] = addrs[0]
        return props

    async def _place_ask(self, slot: Slot) -> bytes:
        if slot.worker == LOCAL_WORKER:
            record = self._record
            scores = self._worker_scores(record) if self._worker_scores else {}
        else:  # a remote worker's resources and scores as it signed them in its join
            record = self._records[slot.worker]
            scores = self.remote_scores(slot.worker) if self.remote_scores else {}
        bench = slot_benchmarks(slot, record, scores)
        extra = {k: v for k, v in bench.items() if k not in _RESOURCE_NAMES}
        props = self._ask_properties()
        validity = self.params.ask_validity

        def make(author: bytes, nonce: int, now: int) -> Order:
            # resources go by name: Order.create's named arguments win over `benchmarks`
            return Order.create(
                author=author,
                side=Side.ASK,
                price_per_hour=slot.price_per_hour,
                duration=slot.duration,
                nonce=nonce,
                valid_from=now,
                valid_until=now + validity,
                cpu_cores=bench["cpu-cores"],
                ram_bytes=bench["ram-size"],
                storage_bytes=bench["storage-size"],
                gpu_count=bench["gpu-count"],
                gpu_mem_bytes=bench["gpu-mem"],
                net_in_bps=bench["net-download"],
                net_out_bps=bench["net-upload"],
                benchmarks=extra,
                network=slot.network,
                properties=props,
            )

        entry, error = await self.desk.place(make)
        self.store.record_ask(entry.order_id, slot.slot_id, entry.order.valid_until, self.clock())
        self.counters["asks_placed"] += 1
        log.info(
            "market: ASK 0x%s for slot %s%s",
            entry.order_id.hex()[:12],
            slot.slot_id,
            f" (queued: {error})" if error else "",
        )
        return bytes(entry.order_id)

    async def _cancel_order(self, order_id: bytes) -> None:
        with contextlib.suppress(KeyError):  # pruned from the book already: expired
            await self.desk.cancel(order_id)

    async def _withdraw_asks(self, slot_id: str) -> None:
        for ask_id in self.store.asks_of_slot(slot_id):
            await self._cancel_order(ask_id)
            self.store.mark_ask_withdrawn(ask_id)
            self.counters["asks_withdrawn"] += 1

    # -- hub: the /sonm/deal/1 server -------------------------------------------------

    async def _handle_stream(self, stream: Any) -> None:
        cap = self.params.max_inbound_streams
        await self._inbound.serve(
            stream,
            self._serve,
            cap=cap,
            counters=self.counters,
            log=log,
            what="market: deal stream",
        )

    async def _serve(self, stream: Any) -> None:
        reader = dealwire.FrameReader()
        domain = self.desk.domain
        self.counters["requests"] += 1
        try:
            payload = await _read_one(stream, reader, self.params.stream_timeout)
            req = dealwire.decode(payload, domain, expect=dealwire.DealRequest)
        except dealwire.DealWireError as exc:
            self.counters["refused"] += 1
            self.counters["bad_messages"] += 1
            await self._reply(stream, bytes(32), ZERO_ADDRESS, None, str(exc))
            return
        slot_id, reason = self._check_request(req)
        decision = None
        if slot_id is not None:
            decision = self.reservations.reserve(slot_id, req.ask_id, req.consumer, self.clock())
            reason = decision.reason
        if decision is None or not decision.ok:
            self.counters["refused"] += 1
            await self._reply(stream, req.ask_id, req.consumer, None, reason)
            return
        await self._reply(stream, req.ask_id, req.consumer, decision.until, "reserved")
        wait = max(decision.until - self.clock(), 1.0)
        try:
            payload = await _read_one(stream, reader, wait)
            note = dealwire.decode(payload, domain, expect=dealwire.DealProposed)
        except dealwire.DealWireError as exc:
            self.counters["bad_messages"] += 1
            await self._verdict(stream, 0, False, str(exc))
            return
        if note.consumer != req.consumer or note.ask_id != req.ask_id:
            await self._verdict(stream, note.deal_id, False, "not the reserved consumer and ASK")
            return
        accepted, why = await self._try_accept(note.deal_id)
        await self._verdict(stream, note.deal_id, accepted, why)

    def _check_request(self, req: dealwire.DealRequest) -> tuple[str | None, str]:
        """The slot behind the requested ASK, or None and why it cannot be had."""
        now = self.clock()
        window = dealwire.check_request_window(req, now)
        if window is not None:
            return None, window
        replayed = self.request_nonces.admit(req, now)
        if replayed is not None:
            self.counters["replayed"] += 1
            return None, replayed
        if not self.is_supplier:
            return None, "this node sells nothing"
        slot_id = self.store.slot_of_ask(req.ask_id)
        ask = self.desk.book.get(req.ask_id)
        if slot_id is None or ask is None or not ask.own:
            return None, "unknown ASK"
        if ask.cancelled or ask.order.valid_until < now:
            return None, "ASK withdrawn or expired"
        slot = self.find_slot(slot_id)
        if slot is None:
            return None, "slot removed"
        if slot.worker == LOCAL_WORKER and self._planner is None:
            return None, "this hub cannot read its hardware"
        if slot.worker != LOCAL_WORKER and slot.worker not in self._remote_planners:
            return None, "the slot's worker has left this hub"
        bid = self.desk.book.get(req.bid_id)
        if bid is not None:  # gossip may not have brought it yet: then the chain decides
            if bid.order.author != req.consumer:
                return None, "the BID is not the requester's"
            why = why_not(bid.order, ask.order)
            if why is not None:
                return None, f"BID does not match the ASK: {why}"
        return slot_id, ""

    async def _reply(
        self, stream: Any, ask_id: bytes, consumer: bytes, until: float | None, reason: str
    ) -> None:
        assert self.key is not None and self.address is not None
        msg = dealwire.DealReply(
            hub=self.address,
            ask_id=ask_id,
            consumer=consumer,
            ok=1 if until is not None else 0,
            reserved_until=math.ceil(until) if until is not None else 0,
            reason=reason.encode()[: dealwire.MAX_REASON_BYTES].decode(errors="ignore"),
        )
        await stream.write(dealwire.frame(dealwire.sign(msg, self.desk.domain, self.key)))

    async def _verdict(self, stream: Any, deal_id: int, accepted: bool, reason: str) -> None:
        assert self.key is not None and self.address is not None
        msg = dealwire.DealVerdict(
            hub=self.address,
            deal_id=deal_id,
            accepted=int(accepted),
            reason=reason.encode()[: dealwire.MAX_REASON_BYTES].decode(errors="ignore"),
        )
        await stream.write(dealwire.frame(dealwire.sign(msg, self.desk.domain, self.key)))

    async def _try_accept(self, deal_id: int) -> tuple[bool, str]:
        """Accept a Pending proposal to our wallet that matches one of our ASKs and the
        slot's reservation; (accepted?, why)."""
        running = self._accepting.get(deal_id)
        if running is not None:  # the event poller got there first: its answer is ours
            await running.wait()
            row = self.store.deal(deal_id)
            status = row.status if row is not None else "unknown"
            return status == "accepted", status
        done = self._accepting[deal_id] = trio.Event()
        try:
            return await self._accept(deal_id)
        finally:
            del self._accepting[deal_id]
            done.set()

    async def _accept(self, deal_id: int) -> tuple[bool, str]:
        deals = self.system.deals
        deal = await self._chain(deals.deal, deal_id)
        if self.hub_wallet is None or deal.hub.lower() != self.hub_wallet.lower():
            return False, "not a deal with this hub"
        if deal.status != 1:
            self._mirror(deal, "supplier")
            if deal.status == 2:
                return True, "accepted"
            return False, "deal is not pending"
        ask_id = deal.order_ref
        slot_id = self.store.slot_of_ask(ask_id)
        entry = self.desk.book.get(ask_id)
        if slot_id is None or entry is None or not entry.own:
            return False, "order_ref is not one of this hub's ASKs"
        ask = entry.order
        if deal.price * 3600 != ask.price_per_hour:
            return False, "price differs from the ASK's"
        if deal.duration <= 0 or (ask.duration and deal.duration > ask.duration):
            return False, "duration longer than the ASK offers"
        if deal.escrow != deal.price * deal.duration:
            return False, "escrow is not price x duration"
        consumer = bytes.fromhex(deal.consumer[2:])
        check = self.reservations.check_proposal(slot_id, ask_id, consumer, self.clock())
        if not check.ok:
            return False, check.reason
        self.reservations.occupy(slot_id, deal_id)  # no second deal on it from here on
        self._mirror(deal, "supplier", slot_id=slot_id)
        try:
            await self._chain(deals.accept, deal_id, sender=self.account)
        except Exception as exc:
            self.reservations.vacate(slot_id, deal_id)
            log.warning("market: accepting deal %d failed: %s", deal_id, exc)
            return False, f"accept failed: {exc}"[: dealwire.MAX_REASON_BYTES]
        self.counters["accepted"] += 1
        fresh = await self._chain(deals.deal, deal_id)
        self._mirror(fresh, "supplier", slot_id=slot_id)
        log.info("market: accepted deal %d on slot %s", deal_id, slot_id)
        self._supplier_wake.set()  # withdraw the slot's ASK now
        return True, "accepted"

    # -- consumer: BIDs looking for ASKs -----------------------------------------------

    async def _consumer_loop(self) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                try:
                    for bid, ask in self._matches():
                        self._negotiating.add(bid.order_id)
                        nursery.start_soon(self._negotiate_guarded, bid, ask)
                except Exception as exc:
                    log.warning("market: matching failed: %s", exc)
                # own BIDs placed through the API do not come back from gossip: look
                # for them every tick, and at once when an ASK arrives
                with trio.move_on_after(self.params.tick):
                    await self._wake.wait()
                self._wake = trio.Event()

    def _upkeep_index(self, now: float) -> None:
        """Expire the index's ASKs; and rebuild it from the book when it holds a quarter
        more than the book may: the book evicts under its caps without telling the
        index, so this bounds the index by the book's `max_orders`, and a rebuild
        (one read of the book) comes at most once per `max_orders / 4` deliveries."""
        self.load_index()
        self.index.expire(int(now))
        if len(self.index) > self._index_cap():
            log.info("market: ASK index over the book's cap (%d): rebuilt", len(self.index))
            self.index = AskIndex(self.index.params)
            self._index_loaded = False
            self.load_index()

    def _index_cap(self) -> int:
        cap = int(self.desk.book.max_orders)
        return cap + cap // 4

    def _matches(self) -> list[tuple[BookEntry, BookEntry]]:
        now = self.clock()
        self._upkeep_index(now)
        book = self.desk.book
        bids = book.query(OrderFilter(side=Side.BID, own=True, limit=1000), now)
        if not bids:
            return []
        busy = {row.bid_id for row in self.store.deals() if row.status != "closed" and row.bid_id}
        self._refused = {k: v for k, v in self._refused.items() if v > now}
        out = []
        for bid in bids:
            if bid.order_id in self._negotiating or bid.order_id in busy:
                continue
            best = self._best_ask(bid, now)
            if best is not None:
                out.append((bid, best))
        return out

    def _best_ask(self, bid: BookEntry, now: float) -> BookEntry | None:
        """The index's winner for `bid`, read back from the book. A winner the book no
        longer holds live (evicted, or pruned a moment before the index expired it)
        leaves the index and the next one is taken; a winner in the refusal cooldown
        sends this BID to the scan over the book, which skips the refused ASKs."""
        for _ in range(8):
            won = self.index.match(bid.order, self.rating)
            if won is None:
                return None
            if won.order_id in self._refused:
                break
            entry = self.desk.book.get(won.order_id)
            if entry is not None and not entry.cancelled and entry.order.valid_until >= now:
                return entry
            self.index.cancel(won.order_id)
        asks = self.desk.book.query(
            OrderFilter(side=Side.ASK, max_price=bid.order.price_per_hour, limit=2000), now
        )
        candidates = [
            a for a in asks if a.order_id not in self._refused and a.order.author != self.address
        ]
        return find_best_ask(bid.order, candidates, self.rating)

    async def _negotiate_guarded(self, bid: BookEntry, ask: BookEntry) -> None:
        try:
            await self._negotiate(bid, ask)
        except Exception as exc:
            self._refused[ask.order_id] = self.clock() + self.params.refuse_cooldown
            why = str(exc) or type(exc).__name__
            log.info("market: ASK 0x%s not taken: %s", ask.order_id.hex()[:12], why)
        finally:
            self._negotiating.discard(bid.order_id)
            self._wake.set()

    async def _negotiate(self, bid: BookEntry, ask: BookEntry) -> None:
        assert self.key is not None and self.address is not None
        props = {p.key: p.value for p in ask.order.properties}
        wallet, peer, addr = props.get(PROP_WALLET), props.get(PROP_PEER), props.get(PROP_ADDR)
        if not (wallet and peer and addr):
            raise RemoteError("the ASK does not say where its hub is")
        from web3 import Web3

        if not Web3.is_address(wallet):
            raise RemoteError(f"the ASK's hub wallet {wallet!r} is not an address")
        wallet = Web3.to_checksum_address(wallet)
        owner = await self._chain(self.system.whitelist.owner_of, wallet)
        if owner.lower() != address_hex(ask.order.author).lower():
            raise RemoteError(f"hub wallet {wallet} is not owned by the ASK's author")
        duration = bid.order.duration or ask.order.duration
        if duration <= 0:
            raise UserError("neither the BID nor the ASK names a duration")
        price = ask.order.price_per_hour // 3600
        if price * 3600 != ask.order.price_per_hour or price == 0:
            raise RemoteError("the ASK's price is not a whole number of wei per second")
        domain = self.desk.domain
        peer_id = ID.from_base58(peer)
        timeout = self.params.stream_timeout
        with trio.fail_after(timeout):
            await self.host.connect(PeerInfo(peer_id, [Multiaddr(addr)]))
            stream = await self.host.new_stream(peer_id, [TProtocol(dealwire.PROTOCOL_ID)])
        try:
            reader = dealwire.FrameReader()
            now = self.clock()
            self._last_nonce = next_nonce(self._last_nonce, now)
            req = dealwire.DealRequest(
                consumer=self.address,
                ask_id=ask.order_id,
                bid_id=bid.order_id,
                nonce=self._last_nonce,
                valid_until=int(now) + 60,
            )
            await stream.write(dealwire.frame(dealwire.sign(req, domain, self.key)))
            reply = dealwire.decode(
                await _read_one(stream, reader, timeout), domain, expect=dealwire.DealReply
            )
            if reply.hub != ask.order.author or reply.ask_id != ask.order_id:
                raise RemoteError("the reply is not from the ASK's author about this ASK")
            if not reply.ok:
                raise RemoteError(f"hub said no: {reply.reason}")
            self.store.set_meta("bid_of_ask:" + ask.order_id.hex(), bid.order_id.hex())
            self.store.set_meta(  # where the deal's task goes (p2pnode/market/tasksvc.py)
                "hub_of_ask:" + ask.order_id.hex(), f"{peer} {addr} {ask.order.author.hex()}"
            )
            deal_id = await self._chain(self._propose, wallet, price, duration, ask.order_id)
            self.counters["proposed"] += 1
            deal = await self._chain(self.system.deals.deal, deal_id)
            self._mirror(deal, "consumer", bid_id=bid.order_id)
            note = dealwire.DealProposed(
                consumer=self.address, ask_id=ask.order_id, deal_id=deal_id
            )
            await stream.write(dealwire.frame(dealwire.sign(note, domain, self.key)))
            wait = max(self.params.accept_timeout, 1.0)
            verdict = dealwire.decode(
                await _read_one(stream, reader, wait), domain, expect=dealwire.DealVerdict
            )
            if verdict.hub != ask.order.author or verdict.deal_id != deal_id:
                raise RemoteError("the verdict is not from the ASK's author about this deal")
            log.info(
                "market: deal %d %s by the hub: %s",
                deal_id,
                "accepted" if verdict.accepted else "refused",
                verdict.reason,
            )
        finally:
            await _close(stream)
        # the chain, not the message, says whether it started
        await self._refresh(deal_id)

    def _propose(self, wallet: str, price: int, duration: int, ask_id: bytes) -> int:
        deals, token = self.system.deals, self.system.token
        escrow = price * duration
        if token.allowance(self.account.address, deals.address) < escrow:
            token.approve(deals.address, escrow, sender=self.account)
        deal_id, _ = deals.propose(wallet, price, duration, ask_id, sender=self.account)
        return int(deal_id)

    # -- both: mirror the registry ------------------------------------------------------

    def _mirror(
        self, deal: Any, role: str, *, bid_id: bytes | None = None, slot_id: str | None = None
    ) -> DealRow:
        if bid_id is None and role == "consumer":
            hexed = self.store.get_meta("bid_of_ask:" + deal.order_ref.hex())
            bid_id = bytes.fromhex(hexed) if hexed else None
        if slot_id is None and role == "supplier":
            slot_id = self.store.slot_of_ask(deal.order_ref)
        row = DealRow(
            deal_id=deal.deal_id,
            role=role,
            consumer=deal.consumer,
            hub=deal.hub,
            ask_id=deal.order_ref,
            bid_id=bid_id,
            slot_id=slot_id,
            price_per_second=deal.price,
            duration=deal.duration,
            escrow=deal.escrow,
            status=_STATUS.get(int(deal.status), "unknown"),
            proposed_at=deal.proposed_at,
            start_time=deal.start_time,
            end_time=deal.end_time,
            paid=deal.paid,
            refunded=deal.refunded,
            updated_at=self.clock(),
        )
        self.store.upsert_deal(row)
        return row

    def _role_of(self, deal: Any) -> str | None:
        if self.hub_wallet is not None and deal.hub.lower() == self.hub_wallet.lower():
            return "supplier"
        if self.account is not None and deal.consumer == self.account.address:
            return "consumer"
        return None

    async def _refresh(self, deal_id: int) -> DealRow | None:
        """Read one deal from the chain, store it, and act on what changed."""
        deal = await self._chain(self.system.deals.deal, deal_id)
        role = self._role_of(deal)
        if role is None:
            return None
        row = self._mirror(deal, role)
        if role == "supplier":
            if row.status == "pending" and deal_id not in self._accepting:
                ok, why = await self._try_accept(deal_id)
                if not ok:
                    log.info("market: not accepting deal %d: %s", deal_id, why)
            elif row.status == "accepted" and row.slot_id:
                self.reservations.occupy(row.slot_id, deal_id)
            elif (
                row.status == "closed"
                and row.slot_id
                and self.reservations.vacate(row.slot_id, deal_id)
            ):
                self._supplier_wake.set()  # a fresh ASK for the slot
            if row.status == "closed":
                for hook in self.close_hooks:
                    try:
                        await hook(deal_id)
                    except Exception as exc:
                        log.warning(
                            "market: deal %d closed, but a close hook failed: %s", deal_id, exc
                        )
        elif row.status == "accepted":
            await self._withdraw_bid(row)
        return row

    async def refresh_deal(self, deal_id: int) -> DealRow | None:
        """The deal as the chain says now (stored and acted on); None if not ours."""
        return await self._refresh(deal_id)

    async def _withdraw_bid(self, row: DealRow) -> None:
        """The BID is withdrawn once its deal starts; judged from the book, not from a
        status change, so a kill -9 between the two cannot leave it open."""
        if row.bid_id is None:
            return
        entry = self.desk.book.get(row.bid_id)
        if entry is not None and entry.own and not entry.cancelled:
            await self._cancel_order(row.bid_id)

    async def _chain_loop(self) -> None:
        while True:
            try:
                await self.chain_upkeep()
            except Exception as exc:  # a chain hiccup must not stop the node
                log.warning("market: chain upkeep failed: %s", exc)
            await trio.sleep(self.params.tick)

    async def chain_upkeep(self) -> None:
        """One round of the chain loop (every `tick`): read the registry's new events,
        then act on the clock: cancel our proposals not accepted within
        `accept_timeout` (escrow back), close the hub's deals that ended."""
        await self._poll_events()
        await self._timers()

    async def _poll_events(self) -> None:
        from contracts.client import read_logs

        deals = self.system.deals
        head = await self._chain(self.system.chain.block_number)
        stored = self.store.get_meta("deals_block")
        start = int(stored) + 1 if stored is not None else self.system.addresses.deployed_at_block
        if start > head:
            return
        events = await self._chain(
            read_logs,
            self.system.chain,
            [deals.address],
            start,
            head,
            max_range=self.params.max_block_range,
        )
        touched: list[int] = []
        me = self.account.address
        wallet = (self.hub_wallet or "").lower()
        for ev in events:
            deal_id = int(ev.args.get("deal_id", -1))
            if deal_id < 0 or deal_id in touched:
                continue
            hub = str(ev.args.get("hub", "")).lower()
            consumer = str(ev.args.get("consumer", ""))
            if hub == wallet or consumer == me or self.store.deal(deal_id) is not None:
                touched.append(deal_id)
        for deal_id in touched:
            await self._refresh(deal_id)
        self.store.set_meta("deals_block", str(head))  # after the rows: a crash re-reads

    async def _timers(self) -> None:
        now = self.clock()
        rechecked = 0
        for row in self.store.deals("pending"):
            if row.role == "consumer" and now - row.proposed_at > self.params.accept_timeout:
                try:
                    await self._chain(self.system.deals.cancel, row.deal_id, sender=self.account)
                    self.counters["cancelled"] += 1
                    log.info("market: deal %d not accepted in time: cancelled", row.deal_id)
                except Exception as exc:
                    log.info("market: cancelling deal %d: %s", row.deal_id, exc)
                self._refused[row.ask_id] = now + self.params.refuse_cooldown
                await self._refresh(row.deal_id)
            elif row.role == "supplier" and now - row.updated_at >= 5.0 and rechecked < 16:
                # anyone can propose to our wallet: a refused proposal is looked at
                # again now and then (its slot may free up), a bounded number per tick
                rechecked += 1
                await self._refresh(row.deal_id)
        for row in self.store.deals("accepted"):
            if row.role == "consumer":
                await self._withdraw_bid(row)
            if row.role == "supplier" and now >= row.end_time:
                try:
                    await self._chain(self.system.deals.close, row.deal_id, sender=self.account)
                    self.counters["closed"] += 1
                    log.info("market: deal %d ended: closed", row.deal_id)
                except Exception as exc:
                    log.debug("market: closing deal %d: %s", row.deal_id, exc)
                await self._refresh(row.deal_id)

    async def close_deal(self, deal_id: int) -> DealRow:
        """Close now: the consumer any time (pro rata), anyone once the deal ended."""
        row = self.store.deal(deal_id)
        if row is None:
            raise KeyError(deal_id)
        if row.status != "accepted":
            raise UserError(f"deal {deal_id} is {row.status}; only an accepted deal closes")
        if row.role == "supplier" and self.clock() < row.end_time:
            raise UserError(
                f"deal {deal_id} runs until {row.end_time}; only its consumer closes it early"
            )
        await self._chain(self.system.deals.close, deal_id, sender=self.account)
        self.counters["closed"] += 1
        fresh = await self._refresh(deal_id)
        assert fresh is not None
        return fresh


def hub_of_ask(store: MarketStore, ask_id: bytes) -> tuple[ID, Multiaddr, bytes] | None:
    """The hub's peer id, address and account as the ASK of a deal we made named them."""
    kept = store.get_meta("hub_of_ask:" + ask_id.hex())
    if kept is None:
        return None
    peer, addr, author = kept.split(" ")
    return ID.from_base58(peer), Multiaddr(addr), bytes.fromhex(author)


async def _read_one(stream: Any, reader: dealwire.FrameReader, timeout: float) -> bytes:
    frames = await read_frames(
        stream, reader, timeout, chunk=dealwire.MAX_FRAME_BYTES + 8, closed=dealwire.DealWireError
    )
    if len(frames) > 1:
        raise dealwire.DealWireError("more than one frame at once")
    return frames[0]


def market_service(ctx: NodeContext) -> MarketService:
    """Daemon service factory: after "orders" (its desk places the slots' ASKs) and
    "chain" (deals are proposed and accepted there; without a chain the service
    keeps slots and matches, and says so when a deal is asked for)."""
    from p2pnode.market.desk import OrderDesk

    host, config, storage = ctx.host, ctx.config, ctx.storage
    pubsub = need("market", ctx.pubsub, "pubsub")
    desk = ctx.services.get("orders")
    if not isinstance(desk, OrderDesk):
        raise UserError("service 'market' needs the 'orders' service started before it")
    system = getattr(ctx.chain, "system", None)
    data_dir = Path(config.data_path)
    market = config.market
    wallet = None
    if market.hub_wallet:
        from web3 import Web3

        wallet = Web3.to_checksum_address(market.hub_wallet)

    def hardware() -> Any:
        from p2pnode.hardware.detect import detect_hardware

        return detect_hardware(data_dir)

    def scores(record: Any) -> dict[str, int]:
        from p2pnode.hardware.bench import node_scores

        hw = config.hardware
        out = node_scores(data_dir, record, hw.net_download_bps, hw.net_upload_bps)
        return {k: v for k, v in out.items() if k in BENCHMARK_NAMES}

    def addrs() -> list[str]:
        announced = list(config.network.announce)
        if announced:
            return announced
        out = []
        for a in host.get_addrs():
            text = str(a).split("/p2p/", 1)[0]
            out.append(text)
        return out

    service = MarketService(
        host,
        storage,
        desk,
        system,
        hub_wallet=wallet,
        private_key=ctx.account.private_key if ctx.account is not None else None,
        data_dir=data_dir,
        params=MarketParams(
            reservation_ttl=market.reservation_ttl,
            accept_timeout=market.accept_timeout,
            ask_validity=market.ask_validity,
        ),
        addrs=addrs,
        hardware=hardware,
        worker_scores=scores,
        rating=ctx.reputation.rating if ctx.reputation is not None else no_ratings,
    )
    pubsub.on_delivery(ORDERS_TOPIC, service.on_delivery)
    return service
