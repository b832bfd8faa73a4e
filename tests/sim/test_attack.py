"""Honest delivery under a sybil eclipse attempt on the publishers.

The full configuration of the libp2p hardening tests: 1000 honest nodes, 4000
sybils connected to every publisher. With 8 messages both variants take about a
minute on one core; benchmarks/sim_quality.py runs more messages.
"""

from __future__ import annotations

import pytest

from simulations import runner


@pytest.mark.slow
def test_full_scale_eclipse_attempt_scoring_on_and_off() -> None:
    r = runner.run(
        "sybil_eclipse",
        {"nodes": 1000, "sybil_ratio": 4, "messages": 8, "warmup_s": 5, "scoring": "both"},
    ).results
    on, off = r["variants"]["on"], r["variants"]["off"]
    print()
    for name, v in (("scoring on ", on), ("scoring off", off)):
        print(
            f"{name}: honest delivery {v['delivery_ratio'] * 100:.2f}% "
            f"p99 {v['latency_s']['p99'] * 1000:.0f} ms, "
            f"sybils' share of honest meshes {1 - v['honest_share_of_honest_meshes']:.2f}, "
            f"publisher connections {v['publisher_connections']}"
        )
    assert on["sybils"] == 4000 and on["honest_nodes"] == 1000
    assert off["publisher_connections"][0] >= 4000  # the eclipse attempt is in place
    assert on["delivery_ratio"] >= 0.99
    # scoring is what pushes the sybils out of honest meshes and off the publishers
    assert on["honest_share_of_honest_meshes"] > 0.95
    assert off["honest_share_of_honest_meshes"] < 0.8
    assert max(on["publisher_connections"]) < 100
