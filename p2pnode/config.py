"""Node configuration: a TOML file, then SONM_* environment variables, then flags.

Later sources win. Every value is checked in `validate()`, and every error names
the key as the operator writes it in the file (`network.listen_port`) together
with the allowed range, because a config mistake must be fixable from the error
line alone.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p2pnode.errors import UserError
from reputation.evidence import MAX_PAYOUT_PERIOD_S, MIN_PAYOUT_PERIOD_S

ROLES = ("seed", "supplier", "worker", "consumer")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
ENV_PREFIX = "SONM_"
VALIDATION_MODES = ("processes", "threads")
DEFAULT_DATA_DIR = "~/.sonm-p2p"


def _check_port(key: str, value: int) -> None:
    if not 0 <= value <= 65535:
        raise UserError(f"{key} = {value}: allowed 0..65535 (0 lets the OS choose)")


def _check_range(key: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise UserError(f"{key} = {value}: allowed {lo}..{hi}")


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class NodeSection:
    role: str = "consumer"
    data_dir: str = DEFAULT_DATA_DIR
    log_level: str = "INFO"
    # where signed messages are decoded and their signatures recovered, off the
    # event loop (p2pnode/validation_pool.py): child processes, or threads
    validation: str = "processes"
    validation_workers: int = 2

    def validate(self) -> None:
        if self.role not in ROLES:
            raise UserError(f"node.role = {self.role!r}: allowed {', '.join(ROLES)}")
        if not self.data_dir.strip():
            raise UserError("node.data_dir is empty: give a directory path")
        if self.log_level.upper() not in LOG_LEVELS:
            raise UserError(f"node.log_level = {self.log_level!r}: allowed {', '.join(LOG_LEVELS)}")
        if self.validation not in VALIDATION_MODES:
            raise UserError(
                f"node.validation = {self.validation!r}: allowed {', '.join(VALIDATION_MODES)}"
            )
        _check_range("node.validation_workers", self.validation_workers, 1, 64)


@dataclass(frozen=True)
class NetworkSection:
    listen_host: str = "127.0.0.1"
    listen_port: int = 4001
    bootstrap: tuple[str, ...] = ()
    announce: tuple[str, ...] = ()  # addresses put in our signed record; empty: listen address
    min_connections: int = 8
    max_connections: int = 32
    redial_interval: float = 2.0
    redial_max_interval: float = 60.0
    px_interval: float = 30.0
    px_max_records: int = 64

    def validate(self) -> None:
        try:
            ip = ipaddress.ip_address(self.listen_host)
        except ValueError:
            raise UserError(
                f"network.listen_host = {self.listen_host!r}: allowed an IPv4 address"
            ) from None
        if ip.version != 4:
            raise UserError(f"network.listen_host = {self.listen_host!r}: allowed an IPv4 address")
        _check_port("network.listen_port", self.listen_port)
        for i, addr in enumerate(self.bootstrap):
            _check_bootstrap_addr(f"network.bootstrap[{i}]", addr)
        if len(self.announce) > 16:
            raise UserError(f"network.announce has {len(self.announce)} addresses: allowed 0..16")
        for i, addr in enumerate(self.announce):
            _check_announce_addr(f"network.announce[{i}]", addr)
        _check_range("network.min_connections", self.min_connections, 0, 1000)
        _check_range("network.max_connections", self.max_connections, 1, 1000)
        if self.max_connections < self.min_connections:
            raise UserError(
                f"network.max_connections = {self.max_connections}: allowed "
                f">= network.min_connections ({self.min_connections})"
            )
        _check_range("network.redial_interval", self.redial_interval, 0.05, 3600.0)
        _check_range(
            "network.redial_max_interval", self.redial_max_interval, self.redial_interval, 86400.0
        )
        _check_range("network.px_interval", self.px_interval, 0.1, 86400.0)
        _check_range("network.px_max_records", self.px_max_records, 1, 1024)


def _check_bootstrap_addr(key: str, addr: str) -> None:
    """A seed address must be dialable TCP and must name the seed's peer id.

    Without /p2p/<id> we could not authenticate the seed in the Noise handshake,
    so an address without it is refused rather than trusted blindly.
    """
    from multiaddr import Multiaddr

    try:
        ma = Multiaddr(addr)
        names = [p.name for p in ma.protocols()]
    except Exception as exc:
        raise UserError(f"{key} = {addr!r}: not a multiaddr ({exc})") from None
    if "tcp" not in names or "p2p" not in names or names[0] not in ("ip4", "ip6", "dns4"):
        raise UserError(f"{key} = {addr!r}: allowed /ip4/<ip>/tcp/<port>/p2p/<peer id>")


def _check_announce_addr(key: str, addr: str) -> None:
    """What others will dial: an IP and a TCP port, nothing else (peer id is added)."""
    from multiaddr import Multiaddr

    try:
        names = [p.name for p in Multiaddr(addr).protocols()]
    except Exception as exc:
        raise UserError(f"{key} = {addr!r}: not a multiaddr ({exc})") from None
    if names not in (["ip4", "tcp"], ["ip6", "tcp"]):
        raise UserError(f"{key} = {addr!r}: allowed /ip4/<ip>/tcp/<port> or /ip6/<ip>/tcp/<port>")


@dataclass(frozen=True)
class ApiSection:
    host: str = "127.0.0.1"
    port: int = 7001

    def validate(self) -> None:
        if not is_loopback_host(self.host):
            raise UserError(
                f"api.host = {self.host!r}: allowed loopback only (127.0.0.1, ::1, localhost); "
                "the API is for the local operator"
            )
        _check_port("api.port", self.port)


@dataclass(frozen=True)
class KeysSection:
    keystore: str = ""  # empty: <data_dir>/keystore.json

    def validate(self) -> None:
        return None


@dataclass(frozen=True)
class ChainSection:
    rpc: str = ""  # empty: the embedded in-process chain
    addresses: str = ""  # JSON file with deployed contract addresses
    chain_id: int = 31337  # EIP-712 domain of signed gossip messages; anvil's default

    def validate(self) -> None:
        _check_range("chain.chain_id", self.chain_id, 1, 2**63 - 1)
        if self.rpc and not self.rpc.startswith(("http://", "https://", "ws://", "wss://")):
            raise UserError(f"chain.rpc = {self.rpc!r}: allowed an http(s):// or ws(s):// URL")


@dataclass(frozen=True)
class HardwareSection:
    """What the built-in benchmarks cannot measure themselves, and how long they run."""

    net_download_bps: int = 0  # the link's download speed in bit/s, as the operator knows it
    net_upload_bps: int = 0
    bench_seconds: float = 1.5  # CPU benchmark time, half single-core, half all cores

    def validate(self) -> None:
        _check_range("hardware.net_download_bps", self.net_download_bps, 0, 10**12)
        _check_range("hardware.net_upload_bps", self.net_upload_bps, 0, 10**12)
        _check_range("hardware.bench_seconds", self.bench_seconds, 0.01, 600.0)


ENGINE_SCHEMES = ("unix://", "tcp://", "ssh://", "npipe://")
EXECUTOR_MAX_ALLOWED_IMAGES = 256


@dataclass(frozen=True)
class ExecutorSection:
    """A supplier's container engine and what it lets consumers run (docs/executor.md)."""

    engine: str = ""  # empty: DOCKER_HOST, then unix:///tmp/podman.sock if present, then default
    allowed_images: tuple[str, ...] = ()  # names (repo:tag) or digests; empty: none allowed
    log_max_bytes: int = 16 * 2**20  # per task, stdout and stderr together

    def validate(self) -> None:
        if self.engine and not self.engine.startswith(ENGINE_SCHEMES):
            raise UserError(
                f"executor.engine = {self.engine!r}: allowed empty or a "
                f"{', '.join(s + '...' for s in ENGINE_SCHEMES)} address"
            )
        if len(self.allowed_images) > EXECUTOR_MAX_ALLOWED_IMAGES:
            raise UserError(
                f"executor.allowed_images has {len(self.allowed_images)} entries: "
                f"allowed 0..{EXECUTOR_MAX_ALLOWED_IMAGES}"
            )
        for i, image in enumerate(self.allowed_images):
            if not image or len(image) > 255 or any(c.isspace() for c in image):
                raise UserError(
                    f"executor.allowed_images[{i}] = {image!r}: allowed an image name "
                    "(repo:tag) or digest (sha256:...), 1..255 characters, no spaces"
                )
        _check_range("executor.log_max_bytes", self.log_max_bytes, 4096, 2**40)


@dataclass(frozen=True)
class MarketSection:
    hub_wallet: str = ""  # a supplier's registered hub wallet (0x address); empty: no ASKs
    reservation_ttl: float = 30.0  # seconds a consumer has from the hub's "yes" to proposing
    accept_timeout: float = 60.0  # a proposal the hub has not accepted by then is cancelled
    ask_validity: int = 600  # seconds each slot's ASK is valid; re-placed before it ends

    def validate(self) -> None:
        if self.hub_wallet and not re.fullmatch(r"0x[0-9a-fA-F]{40}", self.hub_wallet):
            raise UserError(f"market.hub_wallet = {self.hub_wallet!r}: allowed a 0x address")
        _check_range("market.reservation_ttl", self.reservation_ttl, 1.0, 3600.0)
        _check_range("market.accept_timeout", self.accept_timeout, 1.0, 86400.0)
        _check_range("market.ask_validity", self.ask_validity, 60, 31 * 24 * 3600)


@dataclass(frozen=True)
class ReputationSection:
    poll_interval: float = 300.0  # seconds between trust poll rounds (see PollParams rates)
    trust_interval: float = 30.0  # seconds between global trust recomputations
    # seconds between publications of our local trust row (the trust topic's rate limit
    # takes at most one per 120 s from each truster: reputation/params.py rows_per_window)
    row_interval: float = 600.0
    chain_interval: float = 15.0  # seconds between reads of hub wallet payment events
    deal_grace: float = 600.0  # after a deal closes, how long a consumer has to verify results
    # after a payday of a hub we work for, how long before a payment still missing counts
    # against it (reputation/params.py StatusParams.payment_grace_s)
    payment_grace: float = 3600.0
    pretrusted: tuple[str, ...] = ()  # 0x addresses trusted from the start (e.g. the seeds')

    def validate(self) -> None:
        _check_range("reputation.poll_interval", self.poll_interval, 1.0, 86400.0)
        _check_range("reputation.trust_interval", self.trust_interval, 1.0, 86400.0)
        _check_range("reputation.row_interval", self.row_interval, 120.0, 86400.0)
        _check_range("reputation.chain_interval", self.chain_interval, 0.5, 86400.0)
        _check_range("reputation.deal_grace", self.deal_grace, 0.0, 7 * 86400.0)
        _check_range("reputation.payment_grace", self.payment_grace, 0.0, 30 * 86400.0)
        if len(self.pretrusted) > 1024:
            raise UserError(
                f"reputation.pretrusted has {len(self.pretrusted)} addresses: allowed 0..1024"
            )
        for i, addr in enumerate(self.pretrusted):
            if not re.fullmatch(r"0x[0-9a-fA-F]{40}", addr):
                raise UserError(f"reputation.pretrusted[{i}] = {addr!r}: allowed a 0x address")


MAX_HUB_LIST = 256
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_WEI = re.compile(r"[0-9]{1,78}")


def _check_wei(key: str, value: str) -> None:
    if not _WEI.fullmatch(value):
        raise UserError(f"{key} = {value!r}: allowed a decimal amount of token wei (0..10**78)")


def _check_address_list(key: str, values: tuple[str, ...]) -> None:
    if len(values) > MAX_HUB_LIST:
        raise UserError(f"{key} has {len(values)} entries: allowed 0..{MAX_HUB_LIST}")
    for i, value in enumerate(values):
        if not _ADDRESS.fullmatch(value):
            raise UserError(f"{key}[{i}] = {value!r}: allowed a hub wallet's 0x address")


@dataclass(frozen=True)
class WorkerSection:
    """A worker (`--role worker`): which hub it joins and on what terms (docs/operations.md)."""

    hubs_pin: tuple[str, ...] = ()  # hub wallets: only these are joined (empty: any)
    hubs_forbid: tuple[str, ...] = ()  # hub wallets never joined
    min_pay_per_hour: str = "0"  # token wei per hour: a hub offering less is not joined
    check_interval: float = 10.0  # seconds between looks at the hubs heard and the joined one
    # seconds to wait for the trust topic's answers about a hub before joining it
    # (a worker it stiffed warns in its answer); 0: join without asking
    ask_wait: float = 2.0

    def validate(self) -> None:
        _check_address_list("worker.hubs_pin", self.hubs_pin)
        _check_address_list("worker.hubs_forbid", self.hubs_forbid)
        both = {a.lower() for a in self.hubs_pin} & {a.lower() for a in self.hubs_forbid}
        if both:
            raise UserError(
                f"worker.hubs_pin and worker.hubs_forbid both name {sorted(both)[0]}: "
                "allowed in one of them"
            )
        _check_wei("worker.min_pay_per_hour", self.min_pay_per_hour)
        _check_range("worker.check_interval", self.check_interval, 0.5, 3600.0)
        _check_range("worker.ask_wait", self.ask_wait, 0.0, 600.0)


@dataclass(frozen=True)
class WorkersSection:
    """A hub's remote workers: what it pays them, when, and how many it takes."""

    pay_per_hour: str = "0"  # token wei per hour joined; "0": this hub takes no workers
    payout_period: float = 3600.0  # seconds between payouts through the hub wallet
    max_workers: int = 64  # workers joined at once
    max_pending_joins: int = 8  # join requests being answered at once
    announce_interval: float = 60.0  # seconds between the hub's signed announcements

    def validate(self) -> None:
        _check_wei("workers.pay_per_hour", self.pay_per_hour)
        # the agreement's bounds (reputation/evidence.py): what a hub offers, its
        # workers' evidence can judge
        _check_range(
            "workers.payout_period",
            self.payout_period,
            float(MIN_PAYOUT_PERIOD_S),
            float(MAX_PAYOUT_PERIOD_S),
        )
        _check_range("workers.max_workers", self.max_workers, 1, 10_000)
        _check_range("workers.max_pending_joins", self.max_pending_joins, 1, 1024)
        _check_range("workers.announce_interval", self.announce_interval, 1.0, 86400.0)


SECTIONS: dict[str, type[Any]] = {
    "node": NodeSection,
    "network": NetworkSection,
    "api": ApiSection,
    "keys": KeysSection,
    "chain": ChainSection,
    "hardware": HardwareSection,
    "executor": ExecutorSection,
    "market": MarketSection,
    "reputation": ReputationSection,
    "worker": WorkerSection,
    "workers": WorkersSection,
}


@dataclass(frozen=True)
class NodeConfig:
    node: NodeSection = field(default_factory=NodeSection)
    network: NetworkSection = field(default_factory=NetworkSection)
    api: ApiSection = field(default_factory=ApiSection)
    keys: KeysSection = field(default_factory=KeysSection)
    chain: ChainSection = field(default_factory=ChainSection)
    hardware: HardwareSection = field(default_factory=HardwareSection)
    executor: ExecutorSection = field(default_factory=ExecutorSection)
    market: MarketSection = field(default_factory=MarketSection)
    reputation: ReputationSection = field(default_factory=ReputationSection)
    worker: WorkerSection = field(default_factory=WorkerSection)
    workers: WorkersSection = field(default_factory=WorkersSection)

    def validate(self) -> None:
        for name in SECTIONS:
            getattr(self, name).validate()

    @property
    def data_path(self) -> Path:
        return Path(self.node.data_dir).expanduser()

    @property
    def keystore_path(self) -> Path:
        if self.keys.keystore:
            return Path(self.keys.keystore).expanduser()
        return self.data_path / "keystore.json"


def all_keys() -> list[str]:
    """Every settable key as `section.name`, in declaration order."""
    return [
        f"{section}.{f.name}" for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)
    ]


def env_var_for(key: str) -> str:
    return ENV_PREFIX + key.replace(".", "_").upper()


def _coerce(key: str, raw: Any, kind: str) -> Any:
    """Turn a TOML value or an environment string into the field's type.

    Field types are the annotation strings ("int", "float", "str", "tuple[str, ...]").
    """
    expected = {"int": "an integer", "float": "a number", "str": "a string"}.get(
        kind, "a list of strings (comma-separated in the environment)"
    )
    try:
        if isinstance(raw, bool):
            raise ValueError
        if kind == "int":
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind.startswith("tuple"):
            if isinstance(raw, str):
                return tuple(p.strip() for p in raw.split(",") if p.strip())
            if isinstance(raw, list | tuple) and all(isinstance(x, str) for x in raw):
                return tuple(raw)
            raise ValueError
        if not isinstance(raw, str):
            raise ValueError
        return raw
    except (TypeError, ValueError):
        raise UserError(f"{key} = {raw!r}: expected {expected}") from None


def _field_types() -> dict[str, str]:
    return {
        f"{section}.{f.name}": str(f.type)
        for section, cls in SECTIONS.items()
        for f in dataclasses.fields(cls)
    }


def read_toml(path: Path) -> dict[str, Any]:
    """Flatten a TOML file into `section.key` → value, refusing unknown keys."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise UserError(f"config file {path} cannot be read: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"config file {path} is not valid TOML: {exc}") from None
    known = _field_types()
    flat: dict[str, Any] = {}
    for section, body in data.items():
        if section not in SECTIONS:
            raise UserError(
                f"config file {path}: unknown section [{section}]; allowed {', '.join(SECTIONS)}"
            )
        if not isinstance(body, dict):
            raise UserError(f"config file {path}: {section} must be a [table]")
        for name, value in body.items():
            key = f"{section}.{name}"
            if key not in known:
                raise UserError(f"config file {path}: unknown key {key}")
            flat[key] = value
    return flat


def read_env(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in all_keys():
        var = env_var_for(key)
        if var in environ:
            out[key] = environ[var]
    return out


def build_config(layers: list[Mapping[str, Any]]) -> NodeConfig:
    """Apply layers in order (later wins), coerce types, validate."""
    types = _field_types()
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key not in types:
                raise UserError(f"unknown config key {key}; allowed {', '.join(types)}")
            if value is not None:
                merged[key] = _coerce(key, value, types[key])
    sections: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        kwargs = {k.split(".", 1)[1]: v for k, v in merged.items() if k.split(".", 1)[0] == section}
        sections[section] = cls(**kwargs)
    config = NodeConfig(**sections)
    config.validate()
    return config


def load_config(
    path: str | Path | None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> NodeConfig:
    """The daemon's config: file (optional) < SONM_* environment < flags."""
    layers: list[Mapping[str, Any]] = []
    if path is not None:
        layers.append(read_toml(Path(path)))
    layers.append(read_env(os.environ if environ is None else environ))
    if overrides:
        layers.append(overrides)
    return build_config(layers)


def to_toml_dict(config: NodeConfig) -> dict[str, dict[str, Any]]:
    """The config as nested dicts, ready for tomli_w (used by the demo and tests)."""
    out: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        body = dataclasses.asdict(getattr(config, section))
        out[section] = {k: list(v) if isinstance(v, tuple) else v for k, v in body.items()}
    return out
