"""Config: file < environment < flags, and every key's error names the key and the range."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2pnode.config import (
    NodeConfig,
    all_keys,
    build_config,
    env_var_for,
    load_config,
    to_toml_dict,
)
from p2pnode.errors import UserError

SEED = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWGxZSFMa9HUcuUaLeNoAMBTL8MryJwPzGsQovMCXeaTZu"


def test_defaults_are_valid_and_safe() -> None:
    config = load_config(None, environ={})
    assert config == NodeConfig()
    assert config.api.host == "127.0.0.1"
    assert config.network.listen_host == "127.0.0.1"
    assert config.keystore_path == config.data_path / "keystore.json"


def test_layers_file_then_env_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(
        '[node]\nrole = "seed"\n[network]\nlisten_port = 5000\nmin_connections = 2\n'
        f'bootstrap = ["{SEED}"]\n[api]\nport = 7100\n'
    )
    env = {"SONM_NETWORK_LISTEN_PORT": "5001", "SONM_API_PORT": "7101"}
    config = load_config(path, environ=env, overrides={"api.port": 7102})
    assert config.node.role == "seed"
    assert config.network.listen_port == 5001  # env beats file
    assert config.api.port == 7102  # flag beats env
    assert config.network.min_connections == 2
    assert config.network.bootstrap == (SEED,)


def test_env_list_is_comma_separated() -> None:
    config = load_config(None, environ={"SONM_NETWORK_BOOTSTRAP": f"{SEED}, {SEED}"})
    assert config.network.bootstrap == (SEED, SEED)


def test_every_key_has_an_env_var() -> None:
    keys = all_keys()
    assert "network.listen_port" in keys and "api.host" in keys and "chain.rpc" in keys
    assert env_var_for("network.listen_port") == "SONM_NETWORK_LISTEN_PORT"


def test_round_trip_through_toml(tmp_path: Path) -> None:
    import tomli_w

    config = load_config(None, environ={"SONM_NODE_ROLE": "supplier"})
    path = tmp_path / "c.toml"
    path.write_bytes(tomli_w.dumps(to_toml_dict(config)).encode())
    assert load_config(path, environ={}) == config


BAD = [
    ("node.role", "miner", "node.role", "seed, supplier, worker, consumer"),
    ("node.data_dir", " ", "node.data_dir", "directory"),
    ("node.log_level", "LOUD", "node.log_level", "DEBUG, INFO"),
    ("node.validation", "fibres", "node.validation", "processes, threads"),
    ("node.validation_workers", 0, "node.validation_workers", "1..64"),
    ("network.listen_host", "example.com", "network.listen_host", "IPv4"),
    ("network.listen_host", "::1", "network.listen_host", "IPv4"),
    ("network.listen_port", 70000, "network.listen_port", "0..65535"),
    ("network.listen_port", -1, "network.listen_port", "0..65535"),
    ("network.listen_port", "abc", "network.listen_port", "integer"),
    ("network.listen_port", 1.5, "network.listen_port", "integer"),
    ("network.bootstrap", ("/ip4/1.2.3.4/tcp/1",), "network.bootstrap[0]", "/p2p/"),
    ("network.bootstrap", ("not a multiaddr",), "network.bootstrap[0]", "multiaddr"),
    ("network.bootstrap", 5, "network.bootstrap", "list of strings"),
    ("network.announce", ("/ip4/1.2.3.4/udp/1",), "network.announce[0]", "/tcp/<port>"),
    (
        "network.announce",
        (f"/ip4/1.2.3.4/tcp/1/p2p/{SEED.rsplit('/', 1)[1]}",),
        "network.announce[0]",
        "/ip4/<ip>/tcp/<port>",
    ),
    ("network.announce", ("nonsense",), "network.announce[0]", "multiaddr"),
    ("network.announce", ("/ip4/1.2.3.4/tcp/1",) * 17, "network.announce", "0..16"),
    ("network.min_connections", 1001, "network.min_connections", "0..1000"),
    ("network.max_connections", 0, "network.max_connections", "1..1000"),
    ("network.redial_interval", 0.0, "network.redial_interval", "0.05..3600"),
    ("network.redial_interval", "x", "network.redial_interval", "number"),
    ("network.redial_max_interval", 1.0, "network.redial_max_interval", "2.0..86400"),
    ("network.px_interval", 0.0, "network.px_interval", "0.1..86400"),
    ("network.px_max_records", 0, "network.px_max_records", "1..1024"),
    ("api.host", "0.0.0.0", "api.host", "loopback"),
    ("api.host", "192.168.1.5", "api.host", "loopback"),
    ("api.port", 65536, "api.port", "0..65535"),
    ("chain.rpc", "ftp://x", "chain.rpc", "http"),
    ("keys.keystore", 7, "keys.keystore", "string"),
    ("worker.hubs_pin", ("0x12",), "worker.hubs_pin[0]", "0x address"),
    ("worker.hubs_forbid", ("0x" + "ab" * 20,) * 257, "worker.hubs_forbid", "0..256"),
    ("worker.min_pay_per_hour", "-1", "worker.min_pay_per_hour", "decimal amount"),
    ("worker.check_interval", 0.1, "worker.check_interval", "0.5..3600"),
    ("worker.ask_wait", -1.0, "worker.ask_wait", "0.0..600.0"),
    ("workers.pay_per_hour", "1e18", "workers.pay_per_hour", "decimal amount"),
    ("workers.payout_period", 0.5, "workers.payout_period", "1.0.."),
    ("workers.max_workers", 0, "workers.max_workers", "1..10000"),
    ("workers.max_pending_joins", 2000, "workers.max_pending_joins", "1..1024"),
    ("workers.announce_interval", 0.0, "workers.announce_interval", "1.0..86400"),
]


@pytest.mark.parametrize(
    ("key", "value", "named", "allowed"), BAD, ids=[f"{b[0]}={b[1]!r}" for b in BAD]
)
def test_bad_values_name_the_key_and_the_range(
    key: str, value: object, named: str, allowed: str
) -> None:
    with pytest.raises(UserError) as err:
        build_config([{key: value}])
    msg = str(err.value)
    assert named in msg and allowed in msg, msg


def test_max_below_min_names_both() -> None:
    with pytest.raises(
        UserError, match=r"network.max_connections = 3: allowed >= network.min_connections \(5\)"
    ):
        build_config([{"network.min_connections": 5, "network.max_connections": 3}])


def test_loopback_api_hosts_are_accepted() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert build_config([{"api.host": host}]).api.host == host


def test_unknown_keys_and_sections_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[network]\nlisten_prot = 1\n")
    with pytest.raises(UserError, match=r"unknown key network\.listen_prot"):
        load_config(path, environ={})
    path.write_text("[nettwork]\nlisten_port = 1\n")
    with pytest.raises(UserError, match=r"unknown section \[nettwork\]"):
        load_config(path, environ={})
    path.write_text("network = 3\n")
    with pytest.raises(UserError, match="must be a"):
        load_config(path, environ={})


def test_file_errors_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path / "missing.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[node\nrole=")
    with pytest.raises(UserError, match="not valid TOML"):
        load_config(bad, environ={})
    with pytest.raises(UserError, match="cannot be read"):
        load_config(tmp_path, environ={})


def test_env_errors_name_the_key() -> None:
    with pytest.raises(UserError, match=r"api\.port = 'eighty'"):
        load_config(None, environ={"SONM_API_PORT": "eighty"})


def test_a_hub_both_pinned_and_forbidden_is_refused() -> None:
    wallet = "0x" + "cd" * 20
    with pytest.raises(UserError, match=r"worker\.hubs_pin and worker\.hubs_forbid both name"):
        build_config([{"worker.hubs_pin": (wallet,), "worker.hubs_forbid": ("0x" + "CD" * 20,)}])
