"""What every gossip scenario shares: parameters, worlds per variant, analysis.

A scenario (see simulations/scenarios/__init__.py for the protocol) is a
class with a `name`, a frozen `Params` dataclass, and `build(sim)` /
`run(sim) -> dict`. `GossipScenario` implements the common part: it builds
one World per scoring variant ("on", "off" or both, side by side on the same
virtual clock and identical graphs), starts the nodes, lets meshes form for
`warmup_s`, calls the subclass's `traffic(sim)` to schedule what it publishes,
runs to the end and turns each world into a results dict with `analyse`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from gossip.errors import UserError
from gossip.params import GossipSubParams
from gossip.router import PublishError
from gossip.score_params import (
    PeerScoreParams,
    PeerScoreThresholds,
    TopicProfile,
    default_peer_score_params,
)
from simulations import plots
from simulations.engine import Simulator
from simulations.latency import LatencyParams
from simulations.network import NetworkParams
from simulations.node import Behaviour
from simulations.results import percentile
from simulations.topology import TopologyParams
from simulations.world import World, WorldParams

CDF_POINTS = 200
DUP_BIN = 0.5
ROUTER_COUNTERS = (
    "msgs_delivered",
    "msgs_duplicate",
    "msgs_rejected",
    "ihave_sent",
    "iwant_sent",
    "iwant_served",
    "graft_sent",
    "prune_sent",
    "broken_promises",
    "queue_overflow",
    "graylisted_rpcs",
)


@dataclass(frozen=True)
class CommonParams:
    """Parameters every gossip scenario takes. Times in seconds, sizes in bytes."""

    nodes: int = 1000
    seed: int = 0
    topology: str = "random_regular"
    degree: int = 20
    latency: str = "regions"
    fixed_latency_ms: float = 50.0
    uplink_mbps: float = 50.0
    loss: float = 0.0
    scoring: str = "on"
    warmup_s: float = 5.0
    messages: int = 1
    interval_s: float = 1.0
    payload_bytes: int = 600
    drain_s: float = 5.0
    mesh_d: int = 6

    def validate(self) -> None:
        if not 2 <= self.nodes <= 2_000_000:
            raise UserError(f"nodes must be in [2, 2000000], got {self.nodes}")
        if not 0 <= self.seed < 2**63:
            raise UserError(f"seed must be in [0, 2**63), got {self.seed}")
        if self.scoring not in ("on", "off", "both"):
            raise UserError(f"scoring must be 'on', 'off' or 'both', got {self.scoring!r}")
        if not 0.0 < self.uplink_mbps <= 1e6:
            raise UserError(f"uplink_mbps must be in (0, 1e6], got {self.uplink_mbps}")
        if not 0.0 <= self.fixed_latency_ms <= 10_000:
            raise UserError(f"fixed_latency_ms must be in [0, 10000], got {self.fixed_latency_ms}")
        if not 0.0 <= self.warmup_s <= 3600:
            raise UserError(f"warmup_s must be in [0, 3600], got {self.warmup_s}")
        if not 1 <= self.messages <= 100_000:
            raise UserError(f"messages must be in [1, 100000], got {self.messages}")
        if not 0.0 < self.interval_s <= 3600:
            raise UserError(f"interval_s must be in (0, 3600], got {self.interval_s}")
        if not 16 <= self.payload_bytes <= 1 << 20:
            raise UserError(f"payload_bytes must be in [16, 1048576], got {self.payload_bytes}")
        if not 0.0 < self.drain_s <= 3600:
            raise UserError(f"drain_s must be in (0, 3600], got {self.drain_s}")
        if not 1 <= self.mesh_d <= 64:
            raise UserError(f"mesh_d must be in [1, 64], got {self.mesh_d}")
        self.network().validate(self.nodes)

    def network(self) -> NetworkParams:
        return NetworkParams(
            topology=TopologyParams(kind=self.topology, degree=self.degree),
            latency=LatencyParams(
                model="fixed" if self.latency == "fixed" else self.latency,
                fixed_s=self.fixed_latency_ms / 1000.0,
            ),
            uplink_bps=self.uplink_mbps * 1e6,
            loss=self.loss,
        )

    def gossip(self) -> GossipSubParams:
        """The spec's defaults at D=6; other degrees scale them in proportion."""
        d = self.mesh_d
        if d == 6:
            return GossipSubParams()
        d_lo = max(1, round(d * 5 / 6))
        return GossipSubParams(
            D=d,
            D_lo=d_lo,
            D_hi=2 * d,
            D_lazy=d,
            D_score=round(d * 2 / 3),
            D_out=max(0, min(2, d // 2, d_lo - 1)),
        )


def coerce(cls: type[CommonParams], overrides: Mapping[str, Any]) -> CommonParams:
    """Build `cls` from string or typed values (CLI `--set k=v`, sweep files)."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in overrides.items():
        f = known.get(key)
        if f is None:
            raise UserError(f"unknown parameter {key!r}; known: {', '.join(sorted(known))}")
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        try:
            if kind == "int":
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError(value)
                kwargs[key] = int(value)
            elif kind == "float":
                kwargs[key] = float(value)
            elif kind == "bool":
                kwargs[key] = (
                    value
                    if isinstance(value, bool)
                    else str(value).lower()
                    in (
                        "1",
                        "true",
                        "yes",
                        "on",
                    )
                )
            else:
                kwargs[key] = str(value)
        except (TypeError, ValueError) as exc:
            raise UserError(f"parameter {key} must be {kind}, got {value!r}") from exc
    params = cls(**kwargs)
    params.validate()
    return params


class GossipScenario:
    """Shared machinery; subclasses set `name`, `Params`, `topic` and `traffic`."""

    name: ClassVar[str] = "base"
    Params: ClassVar[type[CommonParams]] = CommonParams
    topic: ClassVar[str] = "/sim/1"

    def __init__(self, params: CommonParams) -> None:
        params.validate()
        self.params = params
        self.worlds: dict[str, World] = {}
        self.publish_errors: dict[str, int] = {}
        self.publish_at: float = 0.0

    # -- what subclasses may override ------------------------------------------------

    def total_nodes(self) -> int:
        return self.params.nodes

    def behaviours(self) -> dict[int, Behaviour]:
        return {}

    def graph_nodes(self) -> int | None:
        """Build the topology on the first graph_nodes nodes only (None: all)."""
        return None

    def honest(self, world: World) -> list[int]:
        return [n.index for n in world.nodes if n.behaviour.honest]

    def extra_edges(self, sim: Simulator) -> list[tuple[int, int]]:
        return []

    def topic_profile(self) -> TopicProfile:
        rate = max(1e-3, 1.0 / self.params.interval_s)
        return TopicProfile(weight=1.0, expected_rate=rate)

    def traffic(self, sim: Simulator) -> None:
        raise NotImplementedError

    def start(self, sim: Simulator) -> None:
        for world in self.worlds.values():
            world.start_all([self.topic])

    def targets(self, world: World, publisher: int, t0: float) -> list[int]:
        """Who should receive a message published at t0: honest nodes online now."""
        online = world.net.online
        return [i for i in self.honest(world) if i != publisher and online[i]]

    def end_time(self) -> float:
        p = self.params
        return p.warmup_s + p.messages * p.interval_s + p.drain_s

    def extra_results(self, variant: str, world: World) -> dict[str, Any]:
        return {}

    # -- the protocol --------------------------------------------------------------------

    def variants(self) -> list[str]:
        return ["on", "off"] if self.params.scoring == "both" else [self.params.scoring]

    def score_config(
        self, variant: str
    ) -> tuple[PeerScoreParams | None, PeerScoreThresholds | None]:
        if variant == "off":
            return None, None
        th = PeerScoreThresholds()
        sp = default_peer_score_params(
            {self.topic: self.topic_profile()}, mesh_d=self.params.mesh_d, thresholds=th
        )
        return sp, th

    def build(self, sim: Simulator) -> None:
        p = self.params
        for v in self.variants():
            sp, th = self.score_config(v)
            wp = WorldParams(
                nodes=self.total_nodes(),
                network=p.network(),
                gossip=p.gossip(),
                score_params=sp,
                thresholds=th,
            )
            # same label for every variant: identical graphs, latencies and start times
            world = World(
                sim,
                wp,
                label="net",
                behaviours=self.behaviours(),
                extra_edges=self.extra_edges(sim),
                graph_nodes=self.graph_nodes(),
            )
            world.label = v
            self.worlds[v] = world
            self.publish_errors[v] = 0

    def run(self, sim: Simulator) -> dict[str, Any]:
        p = self.params
        self.start(sim)
        sim.run(until=p.warmup_s)
        self.publish_at = sim.now
        self.traffic(sim)
        sim.run(until=self.end_time())
        out: dict[str, Any] = {"variants": {}}
        for v, world in self.worlds.items():
            res = analyse(
                world,
                self.honest(world),
                lambda pub, t0, world=world: self.targets(world, pub, t0),  # type: ignore[misc]
                self.publish_errors[v],
            )
            sizes = [
                len(world.nodes[i].router.mesh_peers(self.topic))
                for i in self.honest(world)
                if world.net.online[i]
            ]
            res["mesh_size_mean"] = sum(sizes) / len(sizes) if sizes else 0.0
            res.update(self.extra_results(v, world))
            out["variants"][v] = res
        out["events"] = sim.events_run
        out["virtual_time_s"] = sim.now
        out["mesh_d"] = p.mesh_d
        return out

    def publish(self, world: World, variant: str, node: int, data: bytes) -> None:
        try:
            world.publish(node, self.topic, data)
        except PublishError:
            self.publish_errors[variant] += 1

    def plots(self, results: Mapping[str, Any], out_dir: Path) -> list[Path]:
        return standard_plots(self.name, results, out_dir)


# -- analysis --------------------------------------------------------------------------


def analyse(
    world: World,
    honest: list[int],
    targets_of: Callable[[int, float], list[int]],
    publish_errors: int = 0,
) -> dict[str, Any]:
    """Delivery, latency, duplicates and the shortest-path bound for one world.

    `targets_of(publisher, t0)` names the nodes that should have received a
    message (the scenario decides: e.g. churn excludes nodes that left).
    """
    rec = world.recorder
    honest_set = set(honest)
    delays: list[float] = []
    expected = 0
    over_time: list[list[float]] = []
    first_bound: dict[str, float] = {}
    for k, (msg_id, (pub, t0)) in enumerate(sorted(rec.published.items(), key=lambda x: x[1][1])):
        per = rec.first.get(msg_id, {})
        targets = targets_of(pub, t0)
        got = [per[i] - t0 for i in targets if i in per]
        expected += len(targets)
        delays.extend(got)
        over_time.append(
            [
                t0,
                len(got) / len(targets) if targets else 1.0,
                percentile(sorted(got), 90) if len(got) == len(targets) else math.inf,
            ]
        )
        if k == 0 and targets:
            first_bound = lower_bound(world, pub, targets, sorted(got), honest)
    delays.sort()
    ratio = len(delays) / expected if expected else 1.0
    dups = duplicates(world, honest)
    res: dict[str, Any] = {
        "messages": len(rec.published),
        "publish_errors": publish_errors,
        "expected_deliveries": expected,
        "deliveries": len(delays),
        "delivery_ratio": ratio,
        "latency_s": {
            "p50": percentile(delays, 50),
            "p90": percentile(delays, 90),
            "p99": percentile(delays, 99),
            "max": delays[-1] if delays else math.nan,
            "mean": sum(delays) / len(delays) if delays else math.nan,
        },
        "cdf": cdf_points(delays, expected),
        "delivery_over_time": over_time,
        "duplicates_per_delivered": dups,
        "lower_bound": first_bound,
        "graylisted": rec.graylisted,
        "honest_nodes": len(honest_set),
        "network": dataclasses.asdict(world.net.counters),
        "router": {c: world.metric_sum(c, honest) for c in ROUTER_COUNTERS},
    }
    return res


def cdf_points(sorted_delays: list[float], expected: int) -> list[list[float]]:
    """At most CDF_POINTS (delay, fraction of expected deliveries) pairs."""
    n = len(sorted_delays)
    if not n or not expected:
        return []
    step = max(1, n // CDF_POINTS)
    idx = list(range(step - 1, n, step))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    return [[sorted_delays[i], (i + 1) / expected] for i in idx]


def duplicates(world: World, honest: list[int]) -> dict[str, Any]:
    """Copies beyond the first per delivered message, per honest node (router counters)."""
    vals: list[float] = []
    for i in honest:
        m = world.nodes[i].router.metrics
        if m.msgs_delivered:
            vals.append(m.msgs_duplicate / m.msgs_delivered)
    vals.sort()
    hist: list[int] = []
    for v in vals:
        b = int(v / DUP_BIN)
        while len(hist) <= b:
            hist.append(0)
        hist[b] += 1
    return {
        "mean": sum(vals) / len(vals) if vals else math.nan,
        "p50": percentile(vals, 50),
        "p99": percentile(vals, 99),
        "bin_width": DUP_BIN,
        "histogram": hist,
    }


def lower_bound(
    world: World, publisher: int, targets: list[int], got_sorted: list[float], honest: list[int]
) -> dict[str, float]:
    """Shortest-path (latency-only) delays from the publisher, next to the measured ones."""
    dist = world.net.shortest_delays(publisher, set(honest))
    bound = sorted(dist[i] for i in targets if math.isfinite(dist[i]))
    p99_bound = percentile(bound, 99)
    p50_bound = percentile(bound, 50)
    p99 = percentile(got_sorted, 99) if len(got_sorted) == len(targets) else math.inf
    p50 = percentile(got_sorted, 50)
    return {
        "p50_s": p50_bound,
        "p99_s": p99_bound,
        "max_s": bound[-1] if bound else math.nan,
        "p50_ratio": p50 / p50_bound if p50_bound else math.nan,
        "p99_ratio": p99 / p99_bound if p99_bound else math.nan,
    }


def standard_plots(name: str, results: Mapping[str, Any], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    variants: Mapping[str, Any] = results["variants"]
    paths = [
        plots.propagation_cdf(
            {f"scoring {v}": r["cdf"] for v, r in variants.items()},
            out_dir / "propagation_cdf.png",
            f"{name}: propagation",
        ),
    ]
    first = next(iter(variants.values()))
    paths.append(
        plots.duplicates_histogram(
            first["duplicates_per_delivered"],
            int(results.get("mesh_d", 6)),
            out_dir / "duplicates.png",
            f"{name}: duplicates per delivered message",
        )
    )
    paths.append(
        plots.delivery_under_attack(
            {f"scoring {v}": r for v, r in variants.items()},
            out_dir / "delivery.png",
            f"{name}: honest delivery",
        )
    )
    return paths
