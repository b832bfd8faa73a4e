"""The protocol cores stay sans-IO: no trio, socket, time or random imports.

Checked on the source (AST), so a lazy import inside a function is caught too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"trio", "socket", "time", "random", "asyncio", "threading", "select"}
CORE_DIRS = ["gossip", "reputation", "p2pnode/market/matching", "p2pnode/discovery_policy"]


def _core_files() -> list[Path]:
    files: list[Path] = []
    for d in CORE_DIRS:
        base = ROOT / d
        if base.is_dir():
            files.extend(sorted(base.rglob("*.py")))
        elif base.with_suffix(".py").is_file():
            files.append(base.with_suffix(".py"))
    return files


def _imported_roots(tree: ast.AST) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_there_are_core_files() -> None:
    assert _core_files(), "no protocol core files found: the check would pass vacuously"


@pytest.mark.parametrize("path", _core_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_is_sans_io(path: Path) -> None:
    bad = _imported_roots(ast.parse(path.read_text(), str(path))) & FORBIDDEN
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_rule_catches_a_violation() -> None:
    tree = ast.parse("def f():\n    import random\n    from time import monotonic\n")
    assert _imported_roots(tree) & FORBIDDEN == {"random", "time"}
