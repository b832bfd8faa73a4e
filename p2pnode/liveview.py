"""What the web view shows of one node, as sections of items keyed by id, and the
changes between two readings of them.

The page is sent every section once, then only the items that changed (`set`) or
went (`del`), so a quiet network costs the browser nothing and a busy one costs it
what changed. Reading a section is a look at in-memory tables and the node's SQLite
file (bounded by the caps below); `diff` is pure, so the page's update rules are
tested without a network.

Sections: `node` (who this is), `peers` (the peer table, who is connected now, each
peer's role and how we know it, and whom each neighbour sees: the peers it named in
its last peer-exchange answer, which also brings peers we hold no row for: the second
ring), `mesh` (for each topic, the peers in this node's mesh and those known to be
subscribed), `orders` (the book), `deals` (deals this node is party to), `tasks` (on
a hub: the tasks of its deals, where each runs), `figures` (the network as this node
sees it, in numbers: orders/s, the book's spread, hubs by status, BID-to-deal times).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gossip.messages import address_hex
from gossip.orders import Side

Item = dict[str, Any]
Section = dict[str, Item]
View = dict[str, Section]

SECTIONS: tuple[str, ...] = ("node", "peers", "mesh", "orders", "deals", "tasks", "figures")

# how a peer's role is known, most direct first: it told us in peer exchange over its
# own connection; its hub announcement (signed) named it; it is our worker by a signed
# agreement; our config lists it as a seed; a neighbour said so (hearsay)
ROLE_SOURCES: tuple[str, ...] = ("itself", "announcement", "agreement", "config", "neighbour")
RATE_WINDOW = 30.0  # seconds over which orders/s is measured
MAX_DEAL_TIMES = 20  # BID-to-deal times shown, newest deals


@dataclass(frozen=True)
class ViewParams:
    """How much of the node one reading shows, and how often the stream looks again."""

    max_peers: int = 500
    max_orders: int = 500
    max_deals: int = 500
    interval: float = 0.5  # seconds between two readings of one stream
    max_streams: int = 8  # event streams open at once, over all browsers

    def validate(self) -> None:
        for name in ("max_peers", "max_orders", "max_deals", "max_streams"):
            value = getattr(self, name)
            if not 1 <= value <= 100_000:
                raise ValueError(f"liveview.{name} = {value}: must be in 1..100000")
        if not 0.05 <= self.interval <= 60:
            raise ValueError(f"liveview.interval = {self.interval}: must be in 0.05..60 s")


def diff(old: View, new: View) -> list[dict[str, Any]]:
    """The changes that turn `old` into `new`: one event per section that changed,
    `{"section", "set": {id: item}, "del": [id]}`; none when nothing did."""
    events: list[dict[str, Any]] = []
    for name in new.keys() | old.keys():
        before, after = old.get(name, {}), new.get(name, {})
        changed = {k: v for k, v in after.items() if before.get(k) != v}
        gone = sorted(k for k in before if k not in after)
        if changed or gone:
            events.append({"section": name, "set": changed, "del": gone})
    events.sort(key=lambda e: SECTIONS.index(e["section"]) if e["section"] in SECTIONS else 99)
    return events


class StreamSlots:
    """At most `cap` event streams at once: each holds a reading of the whole view
    and a loop, so a page opened over and over must not multiply them without end."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.open = 0

    def take(self) -> bool:
        if self.open >= self.cap:
            return False
        self.open += 1
        return True

    def give(self) -> None:
        self.open = max(0, self.open - 1)


class OrderRate:
    """Orders/s the node received, over the last RATE_WINDOW seconds: one per stream,
    fed the desk's delivered count at each reading (a reading is a look, so the rate
    needs the readings before it)."""

    def __init__(self, window: float = RATE_WINDOW) -> None:
        self.window = window
        self._samples: list[tuple[float, float]] = []

    def add(self, now: float, count: float) -> float | None:
        """The rate up to `now`; None until two readings span a second."""
        self._samples.append((now, count))
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.window:
            self._samples.pop(0)
        t0, c0 = self._samples[0]
        if now - t0 < 1.0:
            return None
        return max(0.0, count - c0) / (now - t0)


def read_view(
    state: Any,
    params: ViewParams,
    peer_name: Callable[[bytes], str],
    rate: OrderRate | None = None,
    now: float = 0.0,
) -> View:
    """Every section, read now from the daemon's handles (p2pnode/api/state.NodeState);
    a service this node does not run gives an empty section. `rate` and `now` (unix
    seconds) feed the orders/s figure."""
    return {
        "node": _node(state),
        "peers": _peers(state, params.max_peers, peer_name),
        "mesh": _mesh(state, peer_name),
        "orders": _orders(state, params.max_orders),
        "deals": _deals(state, params.max_deals),
        "tasks": _tasks(state, params.max_deals),
        "figures": _figures(state, rate, now),
    }


def _node(state: Any) -> Section:
    host = state.host
    return {
        "self": {
            "peer_id": state.peer_id,
            "role": state.config.node.role,
            "addrs": [str(a) for a in host.get_addrs()] if host is not None else [],
            "services": sorted(state.services),
            "hubs_api": False,
        }
    }


def _known_roles(state: Any, peer_name: Callable[[bytes], str]) -> dict[str, tuple[str, str]]:
    """peer id -> (role, how known) from everything but px: hub announcements, worker
    agreements, the seeds in our config."""
    out: dict[str, tuple[str, str]] = {}
    for addr in state.config.network.bootstrap:
        pid = addr.rsplit("/p2p/", 1)[-1] if "/p2p/" in addr else ""
        if pid:
            out[pid] = ("seed", "config")
    workers = state.services.get("workers")
    registry = getattr(workers, "registry", None)
    if registry is not None:
        for member in registry.members(active_only=True):
            if member.peer_id:
                out[member.peer_id] = ("worker", "agreement")
    reputation = state.services.get("reputation")
    for meta in list(getattr(reputation, "meta", {}).values()):
        raw = getattr(meta, "peer_id", None)
        if raw:
            try:
                out[peer_name(bytes(raw))] = ("supplier", "announcement")
            except Exception:  # an id that does not parse names nobody we can show
                continue
    return out


def _peers(state: Any, cap: int, peer_name: Callable[[bytes], str]) -> Section:
    live: set[str] = set()
    if state.host is not None:
        live = {p.to_base58() for p in state.host.get_connected_peers()}
    disc = state.discovery
    named_by: dict[str, tuple[str, ...]] = getattr(disc, "named_by", {})
    told: dict[str, str] = getattr(disc, "roles", {})
    heard: dict[str, dict[str, str]] = getattr(disc, "named_roles", {})
    known = _known_roles(state, peer_name)
    out: Section = {}
    for row in state.storage.list_peers(limit=cap):
        out[row.peer_id] = {
            "connected": row.peer_id in live,
            "source": row.source,
            "addrs": list(row.addrs)[:4],
            "failures": row.failures,
        }
    for pid in sorted(live - out.keys()):  # inbound, record not exchanged yet
        out[pid] = {"connected": True, "source": "inbound", "addrs": [], "failures": 0}
    # the second ring: named by a neighbour, with no row here (yet, or not kept)
    for pid in sorted({p for names in named_by.values() for p in names}):
        if len(out) >= cap:
            break
        if pid not in out and pid != state.peer_id:
            out[pid] = {"connected": False, "source": "named", "addrs": [], "failures": 0}
    for pid, item in out.items():  # whom each neighbour sees, by its own px answer
        item["sees"] = list(named_by.get(pid, ()))
        item["named_by"] = sorted(n for n, names in named_by.items() if pid in names)
        role, how = None, None
        if pid in told:
            role, how = told[pid], "itself"
        elif pid in known:
            role, how = known[pid]
        else:
            said = sorted({heard[n][pid] for n in item["named_by"] if pid in heard.get(n, {})})
            if len(said) == 1:  # neighbours that disagree leave it unknown
                role, how = said[0], "neighbour"
        item["role"], item["role_from"] = role, how
    return out


def _mesh(state: Any, peer_name: Callable[[bytes], str]) -> Section:
    service = state.services.get("pubsub")
    pubsub = getattr(service, "pubsub", None)
    router = getattr(pubsub, "router", None)
    if router is None:
        return {}
    topics = getattr(service, "topics", ())
    return {
        topic: {
            "mesh": sorted(peer_name(p) for p in router.mesh_peers(topic)),
            "subscribed": sorted(peer_name(p) for p in router.topic_peers(topic)),
        }
        for topic in topics
    }


def _orders(state: Any, cap: int) -> Section:
    desk = state.services.get("orders")
    book = getattr(desk, "book", None)
    if book is None:
        return {}
    from p2pnode.market.book import OrderFilter

    out: Section = {}
    for entry in book.query(OrderFilter(limit=cap), desk.clock()):
        o = entry.order
        out["0x" + entry.order_id.hex()] = {
            "side": "ask" if o.side is Side.ASK else "bid",
            "author": address_hex(o.author),
            "price_per_hour": str(o.price_per_hour),
            "duration": o.duration,
            "cpu_cores": o.cpu_cores,
            "ram_bytes": o.ram_bytes,
            "own": entry.own,
            "cancelled": entry.cancelled,
            "valid_until": o.valid_until,
        }
    return out


def _deals(state: Any, cap: int) -> Section:
    market = state.services.get("market")
    store = getattr(market, "store", None)
    if store is None:
        return {}
    out: Section = {}
    for row in store.deals(None, cap):
        item = row.to_json()
        item.pop("updated_at", None)  # a refresh that changed nothing is no change
        out[str(row.deal_id)] = item
    return out


def _tasks(state: Any, cap: int) -> Section:
    service = state.services.get("tasks")
    served = getattr(service, "served_tasks", None)
    if served is None:
        return {}
    return {str(t["deal_id"]): t for t in served(cap)}


def _figures(state: Any, rate: OrderRate | None, now: float) -> Section:
    out: Section = {}
    desk = state.services.get("orders")
    if desk is not None and hasattr(desk, "delivered"):
        per_s = rate.add(now, float(desk.delivered)) if rate is not None else None
        out["orders_rate"] = {
            "received": int(desk.delivered),
            "per_s": None if per_s is None else round(per_s, 2),
            "window_s": rate.window if rate is not None else None,
        }
    book = getattr(desk, "book", None)
    if book is not None:
        out["book"] = _spread(book, desk.clock())
    reputation = state.services.get("reputation")
    if reputation is not None and hasattr(reputation, "status_counts"):
        out["hubs"] = {"by_status": dict(sorted(reputation.status_counts().items()))}
    market = state.services.get("market")
    store = getattr(market, "store", None)
    if store is not None:
        out["deals"] = _deal_times(store, book)
    return out


def _spread(book: Any, now: float) -> Item:
    """The best ASK (lowest) and best BID (highest) and the gap between them: while it
    is positive nothing matches; a BID at or above the best ASK is a deal soon."""
    from p2pnode.market.book import OrderFilter

    asks = book.query(OrderFilter(side=Side.ASK, sort="price", limit=1), now)
    bids = book.query(OrderFilter(side=Side.BID, sort="-price", limit=1), now)
    ask = asks[0].order.price_per_hour if asks else None
    bid = bids[0].order.price_per_hour if bids else None
    return {
        "best_ask": None if ask is None else str(ask),
        "best_bid": None if bid is None else str(bid),
        "spread": None if ask is None or bid is None else str(ask - bid),
        "orders": book.count(),  # kept: withdrawn ones too, until they expire
    }


def _deal_times(store: Any, book: Any) -> Item:
    """Deals by state, and for this node's newest consumer deals the seconds from its
    BID (the order's valid_from, when the book still holds it) to the deal's proposal
    and to its acceptance on chain."""
    counts: dict[str, int] = {}
    times: list[dict[str, Any]] = []
    for row in store.deals(None, 500):
        counts[row.status] = counts.get(row.status, 0) + 1
        if row.role != "consumer" or row.bid_id is None or book is None:
            continue
        if len(times) >= MAX_DEAL_TIMES:
            continue
        entry = book.get(row.bid_id)
        if entry is None:
            continue
        placed = entry.order.valid_from
        times.append(
            {
                "deal_id": row.deal_id,
                "to_proposal_s": max(0, row.proposed_at - placed) if row.proposed_at else None,
                "to_accept_s": max(0, row.start_time - placed) if row.start_time else None,
            }
        )
    return {"by_status": dict(sorted(counts.items())), "bid_to_deal": times[::-1]}
