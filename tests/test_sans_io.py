"""The layers stay apart: protocol cores are sans-IO, and nothing below the daemon imports it.

Checked on the source (AST), so a lazy import inside a function is caught too.

- The protocol cores (gossip/, reputation/, the matching core) import no trio,
  socket, time or random: the same objects run in the daemon and the simulator.
- The cores, the simulator and the contracts client import nothing of p2pnode:
  arrows point down from the daemon, never up into it (the errors they raise live
  in gossip/errors.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"trio", "socket", "time", "random", "asyncio", "threading", "select"}
CORE_DIRS = [
    "gossip",
    "reputation",
    "p2pnode/market/matching",
    "p2pnode/discovery_policy",
    "p2pnode/worker/policy",
    "p2pnode/signedframes",
    "p2pnode/market/dealwire",
    "p2pnode/market/taskwire",
    "p2pnode/worker/wire",
]
# below the daemon: may not import p2pnode (the discovery policy is the daemon's own)
NO_DAEMON_DIRS = ["gossip", "reputation", "p2pnode/market/matching", "simulations", "contracts"]
DAEMON = "p2pnode"
# cores that live inside the daemon's package by the layout, and may be imported from below
CORE_MODULES_IN_DAEMON = ("p2pnode.market.matching",)


def _files(dirs: list[str]) -> list[Path]:
    files: list[Path] = []
    for d in dirs:
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


def _roots_of(path: Path) -> set[str]:
    return _imported_roots(ast.parse(path.read_text(), str(path)))


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("name", sorted(set(NO_DAEMON_DIRS)))
def test_every_listed_path_exists(name: str) -> None:
    base = ROOT / name
    assert base.is_dir() or base.with_suffix(".py").is_file(), (
        f"{name} is listed as a core or a layer below the daemon but does not exist: "
        "the import checks would pass over it"
    )


def test_there_are_core_files() -> None:
    assert _files(CORE_DIRS), "no protocol core files found: the check would pass vacuously"


@pytest.mark.parametrize("path", _files(CORE_DIRS), ids=_rel)
def test_core_is_sans_io(path: Path) -> None:
    bad = _roots_of(path) & FORBIDDEN
    assert not bad, f"{_rel(path)} imports {sorted(bad)}"


def _daemon_imports(tree: ast.AST) -> set[str]:
    """Modules of the daemon's package imported, other than its sans-IO cores."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {
        n
        for n in names
        if n.split(".")[0] == DAEMON
        and not any(n == c or n.startswith(c + ".") for c in CORE_MODULES_IN_DAEMON)
    }


@pytest.mark.parametrize("path", _files(NO_DAEMON_DIRS), ids=_rel)
def test_below_the_daemon_does_not_import_it(path: Path) -> None:
    bad = _daemon_imports(ast.parse(path.read_text(), str(path)))
    assert not bad, f"{_rel(path)} imports {sorted(bad)}"


def test_the_rule_catches_a_violation() -> None:
    tree = ast.parse("def f():\n    import random\n    from time import monotonic\n")
    assert _imported_roots(tree) & FORBIDDEN == {"random", "time"}


def test_the_layer_rule_catches_a_daemon_import() -> None:
    for src in (
        "from p2pnode.errors import UserError\n",
        "def f():\n    import p2pnode.storage\n",
    ):
        assert _daemon_imports(ast.parse(src))
    assert not _daemon_imports(ast.parse("from gossip.errors import UserError\n"))
    assert not _daemon_imports(ast.parse("from p2pnode.market.matching import AskIndex\n"))
    assert _daemon_imports(ast.parse("from p2pnode.market.book import OrderBook\n"))
