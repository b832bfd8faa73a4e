"""Shared fixtures: one embedded chain per session, reverted to a snapshot per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from contracts.anvil import AnvilProcess, find_anvil
from contracts.chain import Chain, embedded_chain
from contracts.compiler import load_artifacts
from contracts.deploy import System, SystemParams, deploy_system
from contracts.hubwallet import HubWallet
from contracts.params import SNM

TEST_PARAMS = SystemParams(
    initial_supply=10_000_000 * SNM,
    deposit=1_000 * SNM,
    lock_bps=1_000,
    payout_period=3_600,
    waiting_period=600,
)


@dataclass
class World:
    chain: Chain
    system: System
    dao: str
    hub: str
    miner: str
    consumer: str
    other: str
    hub2: str

    def make_hub(
        self, owner: str | None = None, fund: int = 2_000 * SNM, name: str = "hub-a"
    ) -> HubWallet:
        """A registered hub wallet holding `fund` SNM (deposit included)."""
        owner = owner or self.hub
        s = self.system
        address, _ = s.factory.create_wallet(sender=owner)
        s.token.transfer(address, fund, sender=self.dao)
        wallet = s.wallet(address)
        wallet.register(name, ["/ip4/127.0.0.1/tcp/4001"], sender=owner)
        return wallet


def make_world(chain: Chain) -> World:
    dao, hub, miner, consumer, other, hub2 = chain.accounts[:6]
    addresses = deploy_system(chain, deployer=dao, params=TEST_PARAMS)
    system = System.connect(chain, addresses)
    system.token.transfer(consumer, 100_000 * SNM, sender=dao)
    return World(chain, system, dao, hub, miner, consumer, other, hub2)


@pytest.fixture(scope="session")
def artifacts() -> None:
    load_artifacts()  # compile (or read the cache) once per session


@pytest.fixture(scope="session")
def session_world(artifacts: None) -> World:
    return make_world(embedded_chain())


@pytest.fixture
def world(session_world: World) -> Iterator[World]:
    snap = session_world.chain.snapshot()
    yield session_world
    session_world.chain.revert(snap)


def _anvil_required() -> bool:
    return os.environ.get("SONM_REQUIRE_ANVIL") == "1"


@pytest.fixture(scope="session")
def anvil() -> Iterator[AnvilProcess]:
    if find_anvil() is None:
        if _anvil_required():
            pytest.fail("SONM_REQUIRE_ANVIL=1 but anvil is not installed (run scripts/setup-tools)")
        pytest.skip(
            "anvil not installed (run scripts/setup-tools); set SONM_REQUIRE_ANVIL=1 to fail"
        )
    with AnvilProcess() as proc:
        yield proc


@pytest.fixture(scope="session")
def anvil_session_world(anvil: AnvilProcess, artifacts: None) -> World:
    from contracts.chain import rpc_chain

    return make_world(rpc_chain(anvil.url))


@pytest.fixture
def anvil_world(anvil_session_world: World) -> Iterator[World]:
    snap = anvil_session_world.chain.snapshot()
    yield anvil_session_world
    anvil_session_world.chain.revert(snap)
