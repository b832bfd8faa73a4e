"""Compile the Vyper sources, cached on disk by the hash of what went in.

Artifacts are never committed: they are derived from contracts/vy/*.vy, the compiler
version and the target EVM version, and a cache hit is only possible when all three
match. The cache lives in ~/.cache/sonm-p2p/contracts (or $SONM_CONTRACTS_CACHE).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from gossip.errors import LocalError

SOURCE_DIR = Path(__file__).resolve().parent / "vy"
CONTRACT_NAMES: tuple[str, ...] = ("Token", "Whitelist", "HubWallet", "HubWalletFactory", "Deals")
EVM_VERSION = "cancun"  # what both py-evm and anvil run; avoids newer opcodes


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    blueprint_bytecode: str
    source_hash: str


def cache_dir() -> Path:
    override = os.environ.get("SONM_CONTRACTS_CACHE")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sonm-p2p" / "contracts"


def _source_hash(name: str, source: str) -> str:
    import vyper

    h = hashlib.sha256()
    for part in (vyper.__version__, EVM_VERSION, name, source):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _compile(name: str, source: str, digest: str) -> Artifact:
    import vyper
    from vyper.compiler.settings import Settings

    try:
        out = vyper.compile_code(
            source,
            output_formats=["abi", "bytecode", "blueprint_bytecode"],
            settings=Settings(evm_version=EVM_VERSION),
        )
    except Exception as exc:  # a broken source is our own bug, say where
        raise LocalError(f"compiling {name}.vy failed: {exc}") from exc
    return Artifact(name, out["abi"], out["bytecode"], out["blueprint_bytecode"], digest)


def _write_atomic(path: Path, data: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def compile_contract(name: str, directory: Path | None = None) -> Artifact:
    """One contract's artifact, from the cache when the inputs are unchanged."""
    source_path = SOURCE_DIR / f"{name}.vy"
    try:
        source = source_path.read_text()
    except OSError as exc:
        raise LocalError(f"contract source {source_path} unreadable: {exc}") from exc
    digest = _source_hash(name, source)
    path = (directory or cache_dir()) / f"{name}-{digest[:16]}.json"
    if path.exists():
        try:
            data = json.loads(path.read_text())
            if data.get("source_hash") == digest:
                return Artifact(**data)
        except (OSError, ValueError, TypeError):
            pass  # a torn or foreign file: rebuild it
    artifact = _compile(name, source, digest)
    with contextlib.suppress(OSError):  # a read-only cache only costs time
        _write_atomic(path, json.dumps(artifact.__dict__))
    return artifact


@cache
def load_artifacts() -> dict[str, Artifact]:
    """Every contract's artifact, compiled (or read from the cache) once per process."""
    return {name: compile_contract(name) for name in CONTRACT_NAMES}
