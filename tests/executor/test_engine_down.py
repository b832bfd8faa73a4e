"""No engine at the configured address: a clear error naming it, not a stack trace."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from p2pnode.executor import EngineUnavailable, Executor, ExecutorSettings
from p2pnode.executor.engine import Engine, engine_address
from p2pnode.storage import Storage
from tests.executor.conftest import DOMAIN, SUPPLIER_KEY


def test_executor_reports_engine_down(tmp_path: Path) -> None:
    address = f"unix://{tmp_path}/no-engine.sock"
    storage = Storage.open_in(tmp_path)
    ex = Executor(
        storage,
        tmp_path,
        ExecutorSettings(engine=address, allowed_images=("busybox",)),
        signer_key=SUPPLIER_KEY,
        domain=DOMAIN,
    )
    with pytest.raises(EngineUnavailable, match="does not answer") as info:
        trio.run(ex.run)
    assert address in str(info.value)
    storage.close()


def test_tcp_engine_refusing_connections() -> None:
    with pytest.raises(EngineUnavailable, match=r"tcp://127\.0\.0\.1:9"):
        Engine.connect("tcp://127.0.0.1:9")


def test_engine_address_order(tmp_path: Path) -> None:
    assert engine_address("tcp://h:1", {"DOCKER_HOST": "unix:///x"}) == "tcp://h:1"
    assert engine_address("", {"DOCKER_HOST": "unix:///x"}) == "unix:///x"
