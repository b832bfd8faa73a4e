"""Deploy the whole system and remember where it went.

Order matters: the Whitelist must exist before the factory (wallets register there),
and the factory address is then handed to the Whitelist once, by the DAO. The
addresses file is what a daemon reads to find the system on a JSON-RPC chain.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from web3 import Web3

from contracts.chain import Chain
from contracts.client import Sender, deploy_contract, sender_address
from contracts.deals import Deals
from contracts.errors import AddressesFileError
from contracts.hubwallet import HubWallet, HubWalletFactory
from contracts.params import SystemParams
from contracts.snm import Token
from contracts.whitelist import Whitelist

ADDRESSES_VERSION = 1


@dataclass(frozen=True)
class SystemAddresses:
    chain_id: int
    token: str
    whitelist: str
    factory: str
    deals: str
    hub_wallet_blueprint: str
    dao: str
    deployed_at_block: int

    def to_json(self) -> str:
        return json.dumps({"version": ADDRESSES_VERSION, **asdict(self)}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str = "addresses") -> SystemAddresses:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise AddressesFileError(f"{source}: not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise AddressesFileError(f"{source}: expected a JSON object")
        if data.get("version") != ADDRESSES_VERSION:
            raise AddressesFileError(
                f"{source}: version must be {ADDRESSES_VERSION}, got {data.get('version')!r}"
            )
        fields: dict[str, object] = {}
        for name in ("token", "whitelist", "factory", "deals", "hub_wallet_blueprint", "dao"):
            value = data.get(name)
            if not isinstance(value, str) or not Web3.is_address(value):
                raise AddressesFileError(f"{source}: {name} must be an address, got {value!r}")
            fields[name] = Web3.to_checksum_address(value)
        for name in ("chain_id", "deployed_at_block"):
            value = data.get(name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise AddressesFileError(f"{source}: {name} must be an integer >= 0, got {value!r}")
            fields[name] = value
        return cls(**fields)  # type: ignore[arg-type]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> SystemAddresses:
        try:
            text = path.read_text()
        except OSError as exc:
            raise AddressesFileError(f"addresses file {path}: {exc.strerror or exc}") from exc
        return cls.from_json(text, source=str(path))


@dataclass
class System:
    """Typed handles on every contract of one deployment."""

    chain: Chain
    addresses: SystemAddresses
    token: Token
    whitelist: Whitelist
    factory: HubWalletFactory
    deals: Deals

    @classmethod
    def connect(cls, chain: Chain, addresses: SystemAddresses) -> System:
        return cls(
            chain=chain,
            addresses=addresses,
            token=Token(chain, addresses.token),
            whitelist=Whitelist(chain, addresses.whitelist),
            factory=HubWalletFactory(chain, addresses.factory),
            deals=Deals(chain, addresses.deals),
        )

    def wallet(self, address: str) -> HubWallet:
        return HubWallet(self.chain, address)


def deploy_system(
    chain: Chain,
    *,
    deployer: Sender | None = None,
    dao: str | None = None,
    params: SystemParams | None = None,
    out: Path | None = None,
) -> SystemAddresses:
    """Deploy token, whitelist, wallet blueprint, factory and deals; wire them up.

    The deployer mints the initial supply and, when it is also the DAO (the default),
    hands the factory to the Whitelist. With a separate DAO address the DAO must call
    `Whitelist.set_factory` itself; `System` works either way once that is done.
    """
    params = params or SystemParams()
    params.validate()
    if deployer is None:
        deployer = chain.accounts[0]
    deployer_addr = sender_address(deployer)
    dao_addr = Web3.to_checksum_address(dao) if dao is not None else deployer_addr
    start_block = chain.block_number()
    token = deploy_contract(chain, "Token", params.initial_supply, sender=deployer, gas=2_000_000)
    whitelist = deploy_contract(chain, "Whitelist", dao_addr, sender=deployer, gas=3_000_000)
    blueprint = deploy_contract(chain, "HubWallet", sender=deployer, gas=4_000_000, blueprint=True)
    factory = deploy_contract(
        chain,
        "HubWalletFactory",
        blueprint,
        token,
        whitelist,
        dao_addr,
        params.deposit,
        params.lock_bps,
        params.payout_period,
        params.waiting_period,
        sender=deployer,
        gas=2_000_000,
    )
    deals = deploy_contract(chain, "Deals", token, whitelist, sender=deployer, gas=3_000_000)
    if dao_addr == deployer_addr:
        Whitelist(chain, whitelist).set_factory(factory, sender=deployer)
    addresses = SystemAddresses(
        chain_id=chain.chain_id,
        token=token,
        whitelist=whitelist,
        factory=factory,
        deals=deals,
        hub_wallet_blueprint=blueprint,
        dao=dao_addr,
        deployed_at_block=start_block + 1,
    )
    if out is not None:
        addresses.save(out)
    return addresses
