"""The validation benchmark's baseline tree: the code a past figure was measured on,
taken from git and run over its own packages, not over this tree's."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from benchmarks.validation import _ROOT, BaselineError, extract_tree, tree_loop_rate


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=_ROOT, check=True, capture_output=True, text=True
    ).stdout


def test_extract_tree_is_the_commit(tmp_path: Path) -> None:
    commit = extract_tree("HEAD", tmp_path)
    assert commit == _git("rev-parse", "HEAD").strip()
    for path in ("gossip/validators.py", "benchmarks/validation.py", "p2pnode/pubsub.py"):
        assert (tmp_path / path).read_text() == _git("show", f"HEAD:{path}")


def test_extract_tree_refuses_an_unknown_revision(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="cannot take the tree at 'no-such-revision"):
        extract_tree("no-such-revision-anywhere", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_tree_loop_rate_runs_the_trees_own_code(tmp_path: Path) -> None:
    extract_tree("HEAD", tmp_path)
    # a tree whose validator cannot be built: the run must fail, which shows the
    # subprocess imported the tree's packages and not this checkout's
    broken = tmp_path / "gossip" / "validators.py"
    good = broken.read_text()
    broken.write_text(good + "\nraise ImportError('the baseline tree was imported')\n")
    with pytest.raises(BaselineError, match="the baseline tree was imported"):
        tree_loop_rate(tmp_path, authors=2, per_author=20)
    broken.write_text(good)
    rate, cpu = tree_loop_rate(tmp_path, authors=2, per_author=20)
    assert rate > 0 and cpu > 0
