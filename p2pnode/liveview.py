"""What the web view shows of one node, as sections of items keyed by id, and the
changes between two readings of them.

The page is sent every section once, then only the items that changed (`set`) or
went (`del`), so a quiet network costs the browser nothing and a busy one costs it
what changed. Reading a section is a look at in-memory tables and the node's SQLite
file (bounded by the caps below); `diff` is pure, so the page's update rules are
tested without a network.

Sections: `node` (who this is), `peers` (the peer table, who is connected now, and
whom each neighbour sees: the peers it named in its last peer-exchange answer),
`mesh` (for each topic, the peers in this node's mesh and those known to be
subscribed), `orders` (the book), `deals` (deals this node is party to).
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

SECTIONS: tuple[str, ...] = ("node", "peers", "mesh", "orders", "deals")


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


def read_view(state: Any, params: ViewParams, peer_name: Callable[[bytes], str]) -> View:
    """Every section, read now from the daemon's handles (p2pnode/api/state.NodeState);
    a service this node does not run gives an empty section."""
    return {
        "node": _node(state),
        "peers": _peers(state, params.max_peers),
        "mesh": _mesh(state, peer_name),
        "orders": _orders(state, params.max_orders),
        "deals": _deals(state, params.max_deals),
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


def _peers(state: Any, cap: int) -> Section:
    live: set[str] = set()
    if state.host is not None:
        live = {p.to_base58() for p in state.host.get_connected_peers()}
    named_by: dict[str, tuple[str, ...]] = getattr(state.discovery, "named_by", {})
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
    for pid, item in out.items():  # whom each neighbour sees, by its own px answer
        item["sees"] = list(named_by.get(pid, ()))
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
