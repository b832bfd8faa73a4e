"""Same seed, same results.json bytes; another seed, other numbers."""

from __future__ import annotations

from pathlib import Path

from simulations import results as results_io
from simulations import runner

PARAMS = {"nodes": 150, "messages": 3, "degree": 10, "loss": 0.01, "drain_s": 2.0}


def _bytes(seed: int, tmp: Path, scenario: str = "order_propagation") -> bytes:
    outcome = runner.run(scenario, {**PARAMS, "seed": seed})
    return results_io.write(
        outcome.results, tmp / f"{scenario}-{seed}-{len(list(tmp.iterdir()))}"
    ).read_bytes()


def test_two_runs_with_one_seed_give_identical_results_json(tmp_path: Path) -> None:
    a = _bytes(5, tmp_path)
    b = _bytes(5, tmp_path)
    assert a == b
    assert b'"delivery_ratio": 1.0' in a
    assert _bytes(6, tmp_path) != a


def test_churn_with_two_scoring_variants_is_deterministic(tmp_path: Path) -> None:
    params = {"nodes": 120, "messages": 4, "degree": 8, "leave_rate_per_s": 0.05, "scoring": "both"}
    a = runner.run("churn", {**params, "seed": 2}).results
    b = runner.run("churn", {**params, "seed": 2}).results
    assert results_io.dumps(a) == results_io.dumps(b)
    assert a["variants"]["on"]["leaves"] > 0


def test_results_format_is_stable() -> None:
    text = results_io.dumps({"b": 1.0 / 3.0, "a": [float("nan"), 2, (1e-20, True)], "c": -0.0})
    assert text == (
        '{\n  "a": [\n    null,\n    2,\n    [\n      1e-20,\n      true\n    ]\n  ],\n'
        '  "b": 0.333333333,\n  "c": 0.0\n}\n'
    )
