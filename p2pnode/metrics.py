"""Prometheus metrics of one daemon, in a registry of its own.

A per-daemon registry (not the process-global default) so that several nodes in
one process (tests, the benchmark) keep separate counts.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.connections = Gauge("sonm_connections", "Open libp2p connections", registry=r)
        self.known_peers = Gauge("sonm_known_peers", "Peers in the peer table", registry=r)
        self.dials = Counter("sonm_dials", "Outbound dials by result", ["result"], registry=r)
        self.bytes_in = Counter("sonm_bytes_in", "Bytes read from TCP connections", registry=r)
        self.bytes_out = Counter("sonm_bytes_out", "Bytes written to TCP connections", registry=r)
        self.errors = Counter("sonm_errors", "Errors by kind", ["kind"], registry=r)
        self.px_records = Counter(
            "sonm_px_records", "Peer-exchange records received, by verdict", ["verdict"], registry=r
        )
        self.dials.labels(result="ok")
        self.dials.labels(result="failed")
