"""The market scenario: deterministic for a seed, and its figures add up."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2pnode.errors import UserError
from simulations import results as results_io
from simulations import runner
from simulations.scenarios import SCENARIOS

SMALL = {"suppliers": 20, "slots": 3, "bid_rate_per_s": 0.05, "market_s": 3600.0}


def test_market_is_registered_for_simulate() -> None:
    assert "market" in SCENARIOS


def test_same_seed_same_results_other_seed_other_numbers() -> None:
    a = runner.run("market", {**SMALL, "seed": 3}).results
    b = runner.run("market", {**SMALL, "seed": 3}).results
    c = runner.run("market", {**SMALL, "seed": 4}).results
    assert results_io.dumps(a) == results_io.dumps(b)
    assert results_io.dumps(a) != results_io.dumps(c)


def test_figures_are_sane() -> None:
    r = runner.run("market", {**SMALL, "seed": 1}).results
    placed, deals, expired = r["bids_placed"], r["deals"], r["bids_expired"]
    assert placed > 100 and deals > 20 and expired > 0
    # every BID ends matched, expired or still open; the rate is over the ended ones
    assert deals + expired + r["bids_open_at_end"] == placed
    assert r["match_rate"] == pytest.approx(deals / (deals + expired))
    offered = (r["asks_placed"] + placed) / SMALL["market_s"]
    assert r["orders_offered_per_s"] == pytest.approx(offered)
    # every slot placed an ASK at least once; a deal withdraws the ASK it took
    assert r["asks_placed"] >= r["slots"] == 60
    assert r["cancels"] + r["conflicts"] >= deals
    t = r["time_to_match_s"]
    assert 0.0 <= t["p50"] <= t["p90"] <= t["p99"] <= 900.0  # within a BID's lifetime
    assert 0.0 < r["matched_on_arrival"] < 1.0
    # a deal never costs more than the BID allows, and its price sits in the book's range
    s = r["price_spread"]
    assert 0.0 <= s["p10"] <= s["p50"] <= s["p90"] < 1.0
    assert 0.0 < r["deal_price_snm_per_h"]["p10"] <= r["deal_price_snm_per_h"]["p90"] < 10.0
    # the book never holds more ASKs than there are slots
    assert 0 < r["book_size"]["mean"] <= r["book_size"]["max"] <= r["slots"]
    # explain says why the BIDs that expired did: counts add up to them
    assert sum(r["unmatched_by"].values()) == expired
    assert set(r["unmatched_by"]) - {"price"}  # resources rule ASKs out too, not only price
    cdf = r["time_to_match_cdf"]
    assert cdf[-1][1] == pytest.approx(r["match_rate"])


def test_more_supply_matches_more() -> None:
    scarce = runner.run("market", {**SMALL, "slots": 1, "seed": 2}).results
    ample = runner.run("market", {**SMALL, "slots": 8, "seed": 2}).results
    assert ample["match_rate"] > scarce["match_rate"]


def test_plot_is_written(tmp_path: Path) -> None:
    outcome = runner.run("market", {**SMALL, "market_s": 900.0})
    paths = runner.write_outputs(outcome, tmp_path)
    names = sorted(p.name for p in paths)
    assert names == ["price_spread.png", "results.json", "time_to_match.png"]
    for name in ("price_spread.png", "time_to_match.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"suppliers": 0}, "suppliers must be in"),
        ({"slots": 65}, "slots must be in"),
        ({"bid_rate_per_s": 0}, "bid_rate_per_s must be in"),
        ({"reprice": 1.0}, "reprice must be in"),
        ({"market_s": 1}, "market_s must be in"),
        ({"propagation_s": -1}, "propagation_s must be in"),
    ],
)
def test_bad_parameters_are_user_errors_naming_them(
    overrides: dict[str, float], match: str
) -> None:
    with pytest.raises(UserError, match=match):
        runner.prepare("market", overrides)
