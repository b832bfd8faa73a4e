"""The trust scenario, small: deterministic, and the defence visibly beats the baselines."""

from __future__ import annotations

from typing import Any

import pytest

from p2pnode.errors import UserError
from simulations import runner
from simulations.results import dumps

pytestmark = pytest.mark.slow  # a few seconds each: whole simulated weeks

SMALL: dict[str, Any] = {
    "nodes": 60,
    "hubs": 8,
    "bad_hubs": 0.25,
    "days": 8.0,
    "arrival_days": 2.0,
    "pretrusted": 4,
    "seed": 3,
}


def _run(**over: Any) -> dict[str, Any]:
    return runner.run("trust", {**SMALL, **over}).results


def test_same_seed_same_results_and_the_defence_beats_the_baselines() -> None:
    a = _run(liars=0.3)
    assert dumps(a) == dumps(_run(liars=0.3))
    on, off = a["polling"]["on"], a["polling"]["off"]
    assert a["liars"] == 18 and a["bad_hubs"] == 2
    # trust-weighted statuses against a plain majority over the same answers
    assert on["right"] >= 0.85
    assert on["majority"]["right"] < on["right"] - 0.3
    assert on["false_positive"] < on["majority"]["false_positive"]
    assert on["liars_caught"] > 0
    # polling keeps honest workers away from bad hubs
    assert off["unpaid_hours_bad_hubs"] > 2 * on["unpaid_hours_bad_hubs"]
    assert on["joins_of_bad_hubs"] < off["joins_of_bad_hubs"]


def test_sybils_get_no_weight_and_change_no_verdict() -> None:
    clean = _run()["polling"]["on"]
    attacked = _run(sybils=300)["polling"]["on"]
    assert attacked["adversary_weight_max"] == 0.0
    assert attacked["adversary_global_trust"] == 0.0
    assert attacked["final_statuses"] == clean["final_statuses"]
    assert attacked["right"] == clean["right"]


def test_bad_parameters_name_themselves() -> None:
    with pytest.raises(UserError, match="liars must be in"):
        runner.prepare("trust", {"liars": 0.95})
    with pytest.raises(UserError, match="polling must be"):
        runner.prepare("trust", {"polling": "sometimes"})
