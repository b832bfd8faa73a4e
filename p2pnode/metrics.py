"""Prometheus metrics of one daemon, in a registry of its own.

A per-daemon registry (not the process-global default) so that several nodes in
one process (tests, the benchmark) keep separate counts.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from p2pnode.heap import frozen_objects

# `*_created` timestamps double every counter's lines and tell an operator nothing
disable_created_metrics()

ERROR_KINDS = ("discovery", "px_timeout", "px_remote", "px_stream", "undialable_peer")
RECORD_VERDICTS = ("accepted", "stale", "rejected")


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.connections = Gauge("sonm_connections", "Open libp2p connections", registry=r)
        self.known_peers = Gauge("sonm_known_peers", "Peers in the peer table", registry=r)
        self.dials = Counter("sonm_dials", "Outbound dials by result", ["result"], registry=r)
        self.bytes_in = LoopCounter()
        self.bytes_out = LoopCounter()
        r.register(
            LoopCounters(
                {
                    "sonm_bytes_in": ("Bytes read from TCP connections", self.bytes_in),
                    "sonm_bytes_out": ("Bytes written to TCP connections", self.bytes_out),
                }
            )
        )
        # process-wide: how much of the heap the cyclic collector no longer walks
        # (p2pnode/heap.py; 0 until frozen). The count kept at the freeze, not
        # gc.get_freeze_count(), which walks every frozen object to count them.
        Gauge(
            "sonm_gc_frozen_objects",
            "Objects frozen out of the cyclic garbage collector's walks",
            registry=r,
        ).set_function(frozen_objects)
        self.errors = Counter("sonm_errors", "Errors by kind", ["kind"], registry=r)
        self.px_requests = Counter(
            "sonm_px_requests", "Peer-exchange requests by direction", ["direction"], registry=r
        )
        self.px_records = Counter(
            "sonm_px_records", "Peer-exchange records received, by verdict", ["verdict"], registry=r
        )
        # every label present from the start, so a dashboard sees zeros, not gaps
        self.dials.labels(result="ok")
        self.dials.labels(result="failed")
        for kind in ERROR_KINDS:
            self.errors.labels(kind=kind)
        for direction in ("sent", "answered"):
            self.px_requests.labels(direction=direction)
        for verdict in RECORD_VERDICTS:
            self.px_records.labels(verdict=verdict)

    def watch_services(self, services: Callable[[], Mapping[str, Any]]) -> None:
        """Export every running service's `stats()` at scrape time (see ServiceStats)."""
        self.registry.register(ServiceStats(services))


class LoopCounter:
    """A counter bumped on every socket read and write: a plain int, exported as a
    prometheus counter when /metrics is read (LoopCounters).

    prometheus' own Counter takes a lock and checks its argument on every increment,
    about 3 % of a node's CPU when frames are small; these counters are only ever
    bumped by the node's trio thread, and reading an int from another thread (a
    scrape) is safe.
    """

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


class LoopCounters(Collector):
    """LoopCounters exported as counters (`<name>_total`) at scrape time."""

    def __init__(self, counters: Mapping[str, tuple[str, LoopCounter]]) -> None:
        self._counters = dict(counters)

    def collect(self) -> Iterator[CounterMetricFamily]:
        for name, (doc, counter) in self._counters.items():
            yield CounterMetricFamily(name, doc, value=counter.value)


def dataclass_numbers(obj: Any, prefix: str = "") -> dict[str, float]:
    """The int/float fields of a plain counters dataclass, for a service's `stats()`."""
    if not dataclasses.is_dataclass(obj):
        return {}
    out: dict[str, float] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[prefix + f.name] = float(value)
    return out


_NAME = re.compile(r"[^a-zA-Z0-9_]")


class ServiceStats(Collector):
    """Services keep their counters as plain numbers (the sans-IO cores cannot touch
    prometheus); a service with `stats() -> dict[str, float]` has them exported as
    gauges `sonm_<service>_<key>` when /metrics is read."""

    def __init__(self, services: Callable[[], Mapping[str, Any]]) -> None:
        self._services = services

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, service in sorted(self._services().items()):
            stats = getattr(service, "stats", None)
            if not callable(stats):
                continue
            try:
                values = stats()
            except Exception:
                continue  # a broken stats() must not break the whole scrape
            for key, value in sorted(values.items()):
                metric = _NAME.sub("_", f"sonm_{name}_{key}")
                yield GaugeMetricFamily(metric, f"{name} service: {key}", value=float(value))
