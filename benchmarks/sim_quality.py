"""Propagation quality of the real router in the simulator, as ratios.

- p99 (and p50) propagation latency of one order against the shortest-path
  lower bound on the same graph (latency-weighted Dijkstra from the
  publisher over honest relays): target p99 within 1.5x. Per topology.
- duplicates received per node per delivered message against the mesh
  degree D, for several D (gossipsub's cost of redundancy is ~D-1 copies).
- honest delivery under the sybil eclipse attempt of the libp2p hardening
  tests (1000 honest, 4000 sybils connected to every publisher, GRAFTing
  every heartbeat and forwarding nothing), scoring on vs off. Several
  minutes on one core; --skip-attack leaves it out, --attack-nodes scales it.

    .venv/bin/python -m benchmarks.sim_quality [--nodes 2000] [--skip-attack]
"""

from __future__ import annotations

import argparse
import time

from simulations import runner


def latency_vs_bound(nodes: int, seeds: int) -> None:
    print(f"\n-- p99 latency vs shortest-path bound, {nodes} nodes, {seeds} seeds each --")
    for topo, degree in (("random_regular", 20), ("scale_free", 20), ("geographic", 20)):
        p99r: list[float] = []
        p50r: list[float] = []
        p99: list[float] = []
        for seed in range(seeds):
            r = runner.run(
                "order_propagation",
                {"nodes": nodes, "topology": topo, "degree": degree, "seed": seed},
            ).results["variants"]["on"]
            assert r["delivery_ratio"] == 1.0, (topo, seed, r["delivery_ratio"])
            p99r.append(r["lower_bound"]["p99_ratio"])
            p50r.append(r["lower_bound"]["p50_ratio"])
            p99.append(r["latency_s"]["p99"])
        worst = max(p99r)
        print(
            f"{topo:15s} p99 {sum(p99) / seeds * 1000:6.0f} ms = "
            f"{sum(p99r) / seeds:.2f}x bound (worst {worst:.2f}x, target 1.5x: "
            f"{'met' if worst <= 1.5 else 'MISSED'}); p50 {sum(p50r) / seeds:.2f}x bound"
        )


def duplicates_vs_d(nodes: int) -> None:
    print(f"\n-- duplicates per node per delivered message vs mesh degree D, {nodes} nodes --")
    for d in (3, 4, 6, 8, 10):
        for messages in (1, 10):
            r = runner.run(
                "order_propagation",
                {"nodes": nodes, "mesh_d": d, "messages": messages, "interval_s": 0.5},
            ).results["variants"]["on"]
            dup = r["duplicates_per_delivered"]
            print(
                f"D={d:2d} messages={messages:2d}: mean {dup['mean']:.2f} = "
                f"{dup['mean'] / d:.2f}x D ({dup['mean'] / max(1, d - 1):.2f}x D-1), "
                f"p99 {dup['p99']:.2f}; p99 latency {r['latency_s']['p99'] * 1000:.0f} ms"
            )


def attack(nodes: int, messages: int) -> None:
    print(f"\n-- sybil eclipse: {nodes} honest vs {4 * nodes} sybils, {messages} messages --")
    t0 = time.perf_counter()
    out = runner.run(
        "sybil_eclipse",
        {"nodes": nodes, "sybil_ratio": 4, "messages": messages, "scoring": "both"},
    )
    wall = time.perf_counter() - t0
    on = out.results["variants"]["on"]
    for v, r in out.results["variants"].items():
        print(
            f"scoring {v:3s}: honest delivery {r['delivery_ratio'] * 100:6.2f}% "
            f"({r['delivery_ratio'] / max(1e-9, on['delivery_ratio']):.3f}x scoring on), "
            f"p50 {r['latency_s']['p50'] * 1000:.0f} ms p99 {r['latency_s']['p99'] * 1000:.0f} ms, "
            f"sybils' share of honest meshes {1 - r['honest_share_of_honest_meshes']:.2f}, "
            f"publisher connections {r['publisher_connections'][0]}"
        )
    print(f"({out.events} events in {wall:.0f} s, both variants)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=2000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--skip-attack", action="store_true")
    ap.add_argument("--attack-nodes", type=int, default=1000)
    ap.add_argument("--attack-messages", type=int, default=30)
    args = ap.parse_args()
    latency_vs_bound(args.nodes, args.seeds)
    duplicates_vs_d(args.nodes)
    if not args.skip_attack:
        attack(args.attack_nodes, args.attack_messages)


if __name__ == "__main__":
    main()
