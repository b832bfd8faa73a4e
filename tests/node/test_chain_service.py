"""The chain service: with chain.rpc + chain.addresses the daemon checks hubs on
chain (hub_check wired into the gossip validator); bad chain settings stop the start
with one line and exit code 2."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from contracts.anvil import AnvilProcess, find_anvil
from p2pnode.config import build_config
from p2pnode.daemon import Daemon
from p2pnode.ready import read_ready
from tests.conftest import free_port, run_cli


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    if find_anvil() is None:
        if os.environ.get("SONM_REQUIRE_ANVIL") == "1":
            pytest.fail("SONM_REQUIRE_ANVIL=1 but anvil is not installed")
        pytest.skip("anvil not installed (run scripts/setup-tools)")
    from contracts.chain import rpc_chain
    from contracts.deploy import deploy_system

    path = tmp_path_factory.mktemp("chain") / "addresses.json"
    with AnvilProcess() as anvil:
        deploy_system(rpc_chain(anvil.url)).save(path)
        yield anvil.url, path


def test_daemon_wires_hub_checks_into_the_validator(
    deployed: tuple[str, Path], tmp_path: Path
) -> None:
    url, addresses = deployed
    config = build_config(
        [
            {
                "node.data_dir": str(tmp_path),
                "node.role": "consumer",
                "network.listen_port": 0,
                "api.port": 0,
                "chain.rpc": url,
                "chain.addresses": str(addresses),
                "chain.chain_id": 31337,
            }
        ]
    )
    daemon = Daemon(config)
    seen: dict[str, Any] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            ctx = daemon.context
            assert ctx is not None
            seen["validator"] = ctx.services["pubsub"].validator
            seen["chain"] = ctx.services["chain"]
            info = read_ready(tmp_path)
            token = (tmp_path / "api.token").read_text().strip()
            async with httpx.AsyncClient() as client:
                r = await client.get(
                    info["api_url"] + "/status", headers={"Authorization": f"Bearer {token}"}
                )  # type: ignore[index]
            seen["services"] = r.json()["services"]
            daemon.request_stop()

    trio.run(main)
    assert seen["services"] == [
        "chain", "market", "orders", "peer_topic", "pubsub", "reputation", "tasks"
    ]  # fmt: skip
    validator = seen["validator"]
    assert validator.hub_check is seen["chain"].hub_check
    assert validator.params.reject_failed_hubs is True


def test_no_chain_means_no_chain_service(tmp_path: Path) -> None:
    from p2pnode.chainsvc import chain_service
    from p2pnode.context import NodeContext
    from p2pnode.metrics import NodeMetrics

    config = build_config([{"node.data_dir": str(tmp_path)}])
    # the factory reads only the config when there is no chain to connect to
    ctx = NodeContext(None, config, None, NodeMetrics(), None)  # type: ignore[arg-type]
    assert chain_service(ctx) is None
    assert ctx.chain is None  # so a service requiring "chain" does not start


def _run_args(tmp_path: Path, **chain: Any) -> list[str]:
    cfg = tmp_path / "node.toml"
    lines = [
        f'[node]\ndata_dir = "{tmp_path / "d"}"\n',
        "[network]\nlisten_port = 0\n[api]\nport = 0\n[chain]\n",
    ]
    lines += [f"{k} = {json.dumps(v)}\n" for k, v in chain.items()]
    cfg.write_text("".join(lines))
    return ["run", "--config", str(cfg)]


def test_wrong_chain_id_is_one_line(deployed: tuple[str, Path], tmp_path: Path) -> None:
    url, addresses = deployed
    result = run_cli(*_run_args(tmp_path, rpc=url, addresses=str(addresses), chain_id=5))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "sonm-p2p: error: cannot run the node: chain.chain_id = 5: allowed 31337, "
        f"the chain {addresses} was deployed on"
    ]


def test_unreachable_rpc_and_bad_addresses_file_are_one_line(
    deployed: tuple[str, Path], tmp_path: Path
) -> None:
    _url, addresses = deployed
    dead = f"http://127.0.0.1:{free_port()}"
    result = run_cli(*_run_args(tmp_path, rpc=dead, addresses=str(addresses)))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "chain.rpc" in lines[0] and "Traceback" not in result.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    result = run_cli(*_run_args(tmp_path, rpc=dead, addresses=str(bad)))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not JSON" in lines[0]
