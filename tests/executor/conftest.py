"""The executor's tests run real containers: a podman or Docker engine with the
local busybox image (scripts/setup-engine). Without one they skip, unless
SONM_REQUIRE_ENGINE=1 (CI), where they fail."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gossip.eip712 import SigningDomain
from p2pnode.executor import (
    DealTask,
    Engine,
    Executor,
    ExecutorSettings,
    SlotLimits,
    TaskSpec,
    engine_address,
)
from p2pnode.localnet import engine_problem
from p2pnode.storage import Storage

IMAGE = "localhost/busybox:latest"
SUPPLIER_KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
DOMAIN = SigningDomain(chain_id=31337)


def _engine_problem() -> str | None:
    return engine_problem(IMAGE)


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """The engine, or skip (fail under SONM_REQUIRE_ENGINE=1) with the reason."""
    problem = _engine_problem()
    if problem is not None:
        if os.environ.get("SONM_REQUIRE_ENGINE") == "1":
            pytest.fail(f"{problem}; SONM_REQUIRE_ENGINE=1")
        pytest.skip(f"{problem}; set SONM_REQUIRE_ENGINE=1 to fail instead")
    eng = Engine.connect(engine_address())
    yield eng
    eng.close()


@pytest.fixture
def make_executor(engine: Engine, tmp_path: Path) -> Iterator[Callable[..., Executor]]:
    """Executors on one SQLite file in tmp_path (a second one is a restarted daemon)."""
    storages: list[Storage] = []
    executors: list[Executor] = []

    def make(**settings: object) -> Executor:
        storage = Storage.open_in(tmp_path / "node")
        storages.append(storage)
        opts: dict[str, object] = {"allowed_images": (IMAGE,), "stop_grace": 1.0}
        opts.update(settings)
        ex = Executor(
            storage,
            tmp_path / "node",
            ExecutorSettings(**opts),  # type: ignore[arg-type]
            signer_key=SUPPLIER_KEY,
            domain=DOMAIN,
            engine=engine,
        )
        executors.append(ex)
        return ex

    yield make
    # no container of a test outlives it
    for ex in executors:
        for c in engine.find({"org.sonm.executor": ex.instance}):
            engine.remove(c.container_id)
    for s in storages:
        s.close()


def deal_task(
    task_id: str,
    command: list[str],
    *,
    deal_id: int = 7,
    ram: int = 64 * 2**20,
    cpu: float = 0.5,
    seconds: float = 60,
    **spec: object,
) -> DealTask:
    return DealTask(
        deal_id=deal_id,
        task_id=task_id,
        spec=TaskSpec(image=str(spec.pop("image", IMAGE)), command=tuple(command), **spec),  # type: ignore[arg-type]
        limits=SlotLimits(cpu_cores=cpu, ram_bytes=ram),
        ends_at=time.time() + seconds,
    )


def drive(executor: Executor, body: Callable[[Executor], object]) -> object:
    """Run `executor` in a fresh trio run, call `await body(executor)`, then stop the
    executor (its containers keep running, as when a daemon goes down)."""
    import trio

    async def main() -> object:
        async with trio.open_nursery() as nursery:
            await nursery.start(executor.run)
            result = await body(executor)  # type: ignore[misc]
            nursery.cancel_scope.cancel()
        return result

    return trio.run(main)
