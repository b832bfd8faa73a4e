"""The market and trust plots: `simulate market|trust` and `simulate figures` write valid PNGs
drawn from the series their JSON holds (the series are checked, not the pixels)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib.image
import pytest

from p2pnode.cli.main import main
from simulations import figures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY_TRUST = ["nodes=40", "hubs=6", "days=4", "arrival_days=1"]
TINY_MARKET = ["suppliers=10", "market_s=3600"]


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC, path
    img = matplotlib.image.imread(path)
    assert img.shape[0] >= 300 and img.shape[1] >= 500 and img.shape[2] in (3, 4), path
    assert img.min() < img.max(), f"{path} is blank"


def sets(prefix: str, items: list[str]) -> list[str]:
    out: list[str] = []
    for item in items:
        out += ["--set", prefix + item]
    return out


def check_fractions(pts: list[list[float]], rounds: int, round_days: float) -> None:
    assert len(pts) == rounds
    assert [p[0] for p in pts] == pytest.approx([(k + 1) * round_days for k in range(rounds)])
    assert all(0.0 <= p[1] <= 1.0 for p in pts)


def test_market_run_writes_time_to_match_and_price_spread(tmp_path: Path) -> None:
    out = tmp_path / "m"
    args = ["simulate", "market", "--seed", "2", "--out", str(out), "--quiet"]
    assert main(args + sets("", TINY_MARKET)) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == ["price_spread.png", "results.json", "time_to_match.png"]
    for name in files[0], files[2]:
        assert_png(out / name)
    res = json.loads((out / "results.json").read_text())
    deals = res["deals"]
    assert deals > 20
    # the time-to-match curve stops at the match rate: unmatched BIDs never reach it
    ttm = res["time_to_match_cdf"]
    assert ttm[-1][1] == pytest.approx(res["match_rate"])
    # it starts at the BIDs matched on arrival (0 s), a share of every ended BID
    assert ttm[0][0] == 0.0
    assert ttm[0][1] == pytest.approx(res["matched_on_arrival"] * res["match_rate"])
    assert [p[0] for p in ttm] == sorted({p[0] for p in ttm})
    cdf = res["price_spread_cdf"]
    assert cdf[-1][1] == pytest.approx(1.0)
    spreads = [p[0] for p in cdf]
    assert spreads == sorted(spreads) and spreads[0] >= 0.0 and spreads[-1] < 1.0
    hours = res["spread_over_time"]
    assert sum(h[2] for h in hours) == deals  # every deal in one hour's bucket
    assert all(0.0 <= h[1] < 1.0 for h in hours)
    assert [h[0] for h in hours] == sorted({h[0] for h in hours})


def test_trust_run_writes_convergence_and_unpaid_hours(tmp_path: Path) -> None:
    out = tmp_path / "t"
    args = ["simulate", "trust", "--seed", "3", "--out", str(out), "--quiet"]
    assert main(args + sets("", [*TINY_TRUST, "liars=0.2"])) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == ["results.json", "trust_convergence.png", "unpaid_hours.png"]
    for name in files[1:]:
        assert_png(out / name)
    res = json.loads((out / "results.json").read_text())
    on, off = res["polling"]["on"], res["polling"]["off"]
    rounds = res["rounds"]
    assert rounds == 16  # 4 days of 6 h rounds
    check_fractions(on["majority_over_time"], rounds, 0.25)
    # the majority series ends where the end-of-run majority score is
    assert on["majority_over_time"][-1][1] == pytest.approx(on["majority"]["right"])
    from simulations.scenarios.trust import series

    s = series(res)
    assert set(s) == {"polling", "majority", "no_polling", "unpaid_polling", "unpaid_no_polling"}
    for key in ("polling", "majority", "no_polling"):
        check_fractions(s[key], rounds, 0.25)
    assert s["polling"][-1][1] == pytest.approx(on["right"])
    assert s["no_polling"][-1][1] == pytest.approx(off["right"])
    assert s["unpaid_polling"][-1][1] == pytest.approx(on["unpaid_hours_bad_hubs"])
    assert s["unpaid_no_polling"][-1][1] == pytest.approx(off["unpaid_hours_bad_hubs"])
    # polling decides statuses that own evidence alone cannot
    assert s["polling"][-1][1] > s["no_polling"][-1][1]


@pytest.mark.slow
def test_figures_cli_writes_every_figure_from_its_json(tmp_path: Path) -> None:
    out = tmp_path / "fig"
    args = ["simulate", "figures", "--seed", "1", "--out", str(out), "--quiet"]
    args += sets("trust.", TINY_TRUST) + sets("market.", TINY_MARKET)
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*figures.FILES, "figures.json"])
    pngs = {name: (out / name).read_bytes() for name in figures.FILES}
    for name in figures.FILES:
        assert_png(out / name)
    data: dict[str, Any] = json.loads((out / "figures.json").read_text())
    assert data["size"] == "small" and data["seed"] == 1

    m = data["market"]
    assert m["params"]["suppliers"] == 10 and m["params"]["seed"] == 1
    assert m["time_to_match_cdf"][-1][1] == pytest.approx(m["match_rate"])
    assert m["price_spread_cdf"][-1][1] == pytest.approx(1.0)

    trust = data["trust"]
    assert list(trust) == ["liars 0%", "liars 10%", "liars 20%", "liars 33%"]
    for label, fraction in zip(trust, figures.LIARS, strict=True):
        run = trust[label]
        assert run["params"]["liars"] == fraction and run["params"]["nodes"] == 40
        assert run["liars"] == round(40 * fraction)
        for key in ("polling", "majority", "no_polling"):
            check_fractions(run[key], 16, 0.25)
        for key in ("unpaid_polling", "unpaid_no_polling"):
            assert len(run[key]) == 16 and all(p[1] >= 0.0 for p in run[key])
    # no liars: polling and plain majority see the same honest answers
    assert trust["liars 0%"]["polling"][-1][1] >= trust["liars 0%"]["no_polling"][-1][1]

    # the PNGs are drawn from figures.json alone: redrawing it gives the same bytes
    again = tmp_path / "again"
    again.mkdir()
    figures.draw(data, again)
    for name in figures.FILES:
        assert (again / name).read_bytes() == pngs[name], name


def test_figures_reject_bad_settings_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for args, match in [
        (["--set", "nodes=10"], "market.KEY=VALUE or trust.KEY=VALUE"),
        (["--set", "chain.nodes=10"], "market.KEY=VALUE or trust.KEY=VALUE"),
        (["--set", "trust.liars=0.5"], "set by the figures themselves"),
        (["--set", "trust.nope=1"], "unknown parameter 'nope'"),
        (["--set", "trust.hubs=1"], "hubs must be in"),
        (["--nodes", "10"], "figures take no --nodes"),
        (["extra"], "unexpected argument"),
    ]:
        assert main(["simulate", "figures", *args]) == 2, args
        err = capsys.readouterr().err
        assert match in err and err.count("\n") == 1, (args, err)
