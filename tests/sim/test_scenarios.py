"""Each scenario runs small and says something true about the protocol."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2pnode.errors import UserError
from simulations import runner
from simulations.scenarios import SCENARIOS


def test_order_propagation_reaches_everyone_no_faster_than_the_shortest_path() -> None:
    r = runner.run("order_propagation", {"nodes": 300, "degree": 12, "seed": 1}).results
    v = r["variants"]["on"]
    assert v["delivery_ratio"] == 1.0 and v["expected_deliveries"] == 299
    lb = v["lower_bound"]
    assert v["latency_s"]["p50"] >= lb["p50_s"] and v["latency_s"]["p99"] >= lb["p99_s"]
    assert 1.0 <= lb["p99_ratio"] < 3.0
    # duplicates come from mesh peers (D_lo..D_hi) and the publisher's flood
    assert 1.0 < v["duplicates_per_delivered"]["mean"] < 12.0
    assert v["cdf"][-1][1] == 1.0


def test_hub_announcements_from_several_hubs_all_arrive() -> None:
    r = runner.run("hub_announcement", {"nodes": 200, "degree": 10, "messages": 4}).results
    v = r["variants"]["on"]
    assert v["messages"] == 4 and v["delivery_ratio"] == 1.0


def test_spam_is_stopped_at_the_first_hop_and_scoring_graylists_spammers() -> None:
    r = runner.run(
        "spam", {"nodes": 150, "degree": 10, "spammers": 5, "messages": 10, "spam_per_s": 10}
    ).results
    on, off = r["variants"]["on"], r["variants"]["off"]
    assert on["delivery_ratio"] == 1.0 and off["delivery_ratio"] == 1.0
    # validation stops spam at the spammers' neighbours: no honest node forwards it
    assert off["invalid_validated_per_spam_message"] <= 10 + 1
    # scoring cuts the spammers off: far fewer invalid messages reach honest validators
    assert on["graylisted"] > 0
    assert on["invalid_validated_by_honest"] * 5 < off["invalid_validated_by_honest"]


def test_small_sybil_eclipse_keeps_honest_delivery_with_scoring() -> None:
    r = runner.run(
        "sybil_eclipse",
        {"nodes": 60, "sybil_ratio": 4, "messages": 5, "warmup_s": 4, "degree": 6},
    ).results
    on, off = r["variants"]["on"], r["variants"]["off"]
    assert on["sybils"] == 240
    assert off["publisher_connections"][0] >= 240  # the eclipse attempt is in place
    assert on["delivery_ratio"] >= 0.99


def test_plots_are_written(tmp_path: Path) -> None:
    outcome = runner.run("spam", {"nodes": 60, "degree": 6, "spammers": 2, "messages": 3})
    paths = runner.write_outputs(outcome, tmp_path)
    names = sorted(p.name for p in paths)
    assert names == ["delivery.png", "duplicates.png", "propagation_cdf.png", "results.json"]
    for p in paths:
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


@pytest.mark.parametrize(
    ("name", "overrides", "match"),
    [
        ("nope", {}, "unknown scenario"),
        ("order_propagation", {"nodez": 3}, "unknown parameter 'nodez'"),
        ("order_propagation", {"nodes": "many"}, "nodes must be int"),
        ("order_propagation", {"nodes": 1}, "nodes must be in"),
        ("order_propagation", {"scoring": "maybe"}, "scoring must be"),
        ("order_propagation", {"nodes": 11, "degree": 3}, "nodes\\*degree even"),
        ("spam", {"nodes": 10, "degree": 4, "spammers": 10}, "spammers must be"),
        ("churn", {"leave_rate_per_s": 2}, "leave_rate_per_s"),
        ("sybil_eclipse", {"publishers": 0}, "publishers must be"),
    ],
)
def test_bad_parameters_are_user_errors_naming_them(
    name: str, overrides: dict[str, object], match: str
) -> None:
    with pytest.raises(UserError, match=match):
        runner.prepare(name, overrides)


def test_every_scenario_has_defaults_that_validate() -> None:
    for name, cls in SCENARIOS.items():
        assert cls.name == name
        cls.Params().validate()


def test_withholders_are_absorbed_by_the_mesh_and_gossip() -> None:
    base = {"nodes": 300, "degree": 12, "messages": 5, "seed": 3}
    clean = runner.run("order_propagation", base).results["variants"]["on"]
    r = runner.run("order_propagation", {**base, "withholders": 60}).results["variants"]["on"]
    assert r["honest_nodes"] == 240 and r["expected_deliveries"] == 5 * 239
    assert r["delivery_ratio"] >= 0.99
    # a fifth of the relays are dead: the honest ones see fewer copies
    assert r["duplicates_per_delivered"]["mean"] < clean["duplicates_per_delivered"]["mean"]
