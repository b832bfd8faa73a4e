"""`sonm-p2p simulate` as an operator runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from p2pnode.cli.main import main
from tests.conftest import run_cli


@pytest.mark.slow
def test_simulate_writes_results_and_plots_matching_the_library(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_cli(
        "simulate",
        "order_propagation",
        "--nodes",
        "80",
        "--seed",
        "4",
        "--out",
        str(out),
        "--set",
        "degree=8",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    assert "delivery 100.00%" in proc.stderr
    files = sorted(p.name for p in out.iterdir())
    assert files == ["delivery.png", "duplicates.png", "propagation_cdf.png", "results.json"]
    res = json.loads((out / "results.json").read_text())
    assert res["params"]["degree"] == 8 and res["params"]["nodes"] == 80


@pytest.mark.slow
def test_same_seed_same_bytes_across_processes(tmp_path: Path) -> None:
    """Each CLI run is a new interpreter with another hash seed: still the same bytes."""
    outs = []
    for k, hash_seed in enumerate(("1", "2")):
        out = tmp_path / f"r{k}"
        proc = run_cli(
            "simulate",
            "churn",
            "--nodes",
            "60",
            "--seed",
            "9",
            "--out",
            str(out),
            "--set",
            "degree=6",
            "--set",
            "messages=3",
            "--no-plots",
            "--quiet",
            env={"PYTHONHASHSEED": hash_seed},
        )
        assert proc.returncode == 0, proc.stderr
        outs.append((out / "results.json").read_bytes())
    assert outs[0] == outs[1]


def test_simulate_reports_bad_input_as_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for args, match in [
        (["simulate", "nope"], "unknown scenario"),
        (["simulate", "churn", "--set", "oops"], "--set expects KEY=VALUE"),
        (["simulate", "churn", "--nodes", "1"], "nodes must be in"),
        (["simulate", "churn", "extra"], "unexpected argument"),
        (["simulate", "sweep"], "needs a FILE"),
        (["simulate", "sweep", str(tmp_path / "none.toml"), "--workers", "0"], "--workers"),
        (["simulate", "sweep", str(tmp_path / "none.toml")], "cannot read sweep file"),
    ]:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert match in err and err.count("\n") == 1, (args, err)


def test_simulate_list_names_every_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("order_propagation", "hub_announcement", "churn", "sybil_eclipse", "spam"):
        assert name in out
