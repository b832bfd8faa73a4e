"""Honest delivery under a sybil eclipse attempt on the publishers.

The full configuration of the libp2p hardening tests (1000 honest, 4000
sybils) takes a few minutes for both variants on one core, so CI runs the
same ratio at a quarter of the size (250 honest, 1000 sybils) and
benchmarks/sim_quality.py runs the full one.
"""

from __future__ import annotations

import pytest

from simulations import runner


@pytest.mark.slow
def test_quarter_scale_eclipse_attempt_scoring_on_and_off() -> None:
    r = runner.run(
        "sybil_eclipse",
        {"nodes": 250, "sybil_ratio": 4, "messages": 15, "warmup_s": 5, "scoring": "both"},
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
    assert on["sybils"] == 1000 and on["honest_nodes"] == 250
    assert off["publisher_connections"][0] >= 1000  # the eclipse attempt is in place
    assert on["delivery_ratio"] >= 0.99
    # scoring is what pushes the sybils out of honest meshes and off the publishers
    assert on["honest_share_of_honest_meshes"] > 0.95
    assert off["honest_share_of_honest_meshes"] < 0.8
    assert max(on["publisher_connections"]) < 100
