"""Which modules run compiled, and the switch that loads them only when they match.

The router's and the simulator's hot paths are plain typed Python, compiled to C
extension modules by mypyc (`scripts/build_native.py`, run by `make install`):
the same code, a 10^4-node simulated world in 0.52-0.68x the time, 10^5 nodes in
0.79x (docs/architecture.md §6). The
compiled modules live in `build/native/`, never beside the sources, and are used
only while every one of them was built from exactly the sources on disk: the build
records each source's SHA-256 and this module compares them at import. A source
edited since the build therefore runs as Python (with one warning) instead of a
stale binary shadowing it; `SONM_PURE_PYTHON=1` forces the Python sources.

This module, `gossip/__init__.py` and the modules not listed here always run as
Python: they are imported before the decision, subclass builtins, or hold
parameter classes whose `validate()` must see whatever a user wrote.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import sys
from pathlib import Path

# Compiled together as one group (one shared library, `GROUP__mypyc`), so calls
# between them are direct C calls. All or none: a module of the group calls the
# others' compiled code, so one stale source voids the whole group.
COMPILED: tuple[str, ...] = (
    "gossip.router",
    "gossip.mesh",
    "gossip.score",
    "gossip.wire",
    "gossip.outbound",
    "gossip.lazy",
    "gossip.mcache",
    "gossip.msgid",
    "gossip.replay",
    "gossip.peers",
    "gossip.events",
    "gossip.topics",
    "gossip.rng",
    "simulations.engine",
    "simulations.network",
    "simulations.node",
    "simulations.world",
    "simulations.topology",
    "simulations.latency",
)
GROUP = "sonm_native"
ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / "build" / "native"
MANIFEST = "manifest.json"
PURE_ENV = "SONM_PURE_PYTHON"

log = logging.getLogger("sonm.native")


def source_of(module: str, root: Path = ROOT) -> Path:
    return root.joinpath(*module.split(".")).with_suffix(".py")


def source_hashes(root: Path = ROOT) -> dict[str, str]:
    """SHA-256 of each compiled module's source, as the build records them."""
    return {m: hashlib.sha256(source_of(m, root).read_bytes()).hexdigest() for m in COMPILED}


def abi_tag() -> str:
    return f"{sys.implementation.cache_tag}-{sys.platform}"


def check(build_dir: Path = BUILD_DIR, root: Path = ROOT) -> tuple[bool, str]:
    """Whether `build_dir` holds a build of exactly the sources under `root`, and
    why not when it does not (empty when there is no build at all)."""
    try:
        manifest = json.loads((build_dir / MANIFEST).read_text())
    except FileNotFoundError:
        return False, ""
    except (OSError, ValueError) as e:
        return False, f"unreadable {build_dir / MANIFEST}: {e}"
    if not isinstance(manifest, dict):
        return False, f"{build_dir / MANIFEST} is not an object"
    if manifest.get("abi") != abi_tag():
        return False, f"built for {manifest.get('abi')!r}, running {abi_tag()!r}"
    try:
        current = source_hashes(root)
    except OSError as e:
        return False, f"cannot read the sources: {e}"
    built = manifest.get("modules")
    if built != current:
        changed = sorted(
            m for m in current if not isinstance(built, dict) or built.get(m) != current[m]
        )
        return False, "sources changed since the build: " + ", ".join(changed or ["module list"])
    return True, ""


_decided = False
_dir: Path | None = None


def native_dir() -> Path | None:
    """The build to load, decided once per process: None runs the Python sources."""
    global _decided, _dir
    if not _decided:
        _decided = True
        _dir = _load()
    return _dir


def _load() -> Path | None:
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        return None
    ok, why = check()
    if not ok:
        if why:
            log.warning(
                "compiled modules not used (%s); running the Python sources, slower. "
                "`make install` rebuilds them.",
                why,
            )
        return None
    group = f"{GROUP}__mypyc"
    libs = sorted(BUILD_DIR.glob(f"{group}.*"))
    spec = importlib.util.spec_from_file_location(group, libs[0]) if libs else None
    if spec is None or spec.loader is None:
        log.warning("compiled modules not used: no %s in %s", group, BUILD_DIR)
        return None
    lib = importlib.util.module_from_spec(spec)
    sys.modules[group] = lib
    spec.loader.exec_module(lib)
    return BUILD_DIR


def activate(package: str, path: list[str]) -> None:
    """Put the package's compiled modules ahead of its sources, when they match.
    Called from the package's `__init__`, before any of its modules is imported."""
    d = native_dir()
    if d is not None and (d / package).is_dir():
        path.insert(0, str(d / package))


def compiled_in_use() -> list[str]:
    """The modules of COMPILED now loaded from compiled code (for status lines and tests)."""
    out = []
    for m in COMPILED:
        mod = sys.modules.get(m)
        if mod is not None and not str(getattr(mod, "__file__", "")).endswith(".py"):
            out.append(m)
    return out
