"""The [hardware] config keys: file, environment, and errors that name the key and range."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomli_w

from p2pnode.config import build_config, load_config, to_toml_dict
from p2pnode.errors import UserError


def test_defaults_measure_briefly_and_state_no_link_speed() -> None:
    config = load_config(None, environ={})
    assert config.hardware.bench_seconds == 1.5
    assert (config.hardware.net_download_bps, config.hardware.net_upload_bps) == (0, 0)


def test_file_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text("[hardware]\nnet_download_bps = 1000000000\nbench_seconds = 0.5\n")
    env = {"SONM_HARDWARE_NET_UPLOAD_BPS": "200000000", "SONM_HARDWARE_BENCH_SECONDS": "2"}
    config = load_config(path, environ=env)
    assert config.hardware.net_download_bps == 10**9
    assert config.hardware.net_upload_bps == 2 * 10**8
    assert config.hardware.bench_seconds == 2.0
    round_trip = tmp_path / "again.toml"
    round_trip.write_bytes(tomli_w.dumps(to_toml_dict(config)).encode())
    assert load_config(round_trip, environ={}) == config


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("hardware.net_download_bps", -1, "hardware.net_download_bps = -1: allowed 0..10000"),
        ("hardware.net_upload_bps", 10**12 + 1, "hardware.net_upload_bps = 1000000000001: allowed"),
        (
            "hardware.net_upload_bps",
            "fast",
            "hardware.net_upload_bps = 'fast': expected an integer",
        ),
        ("hardware.bench_seconds", 0.0, "hardware.bench_seconds = 0.0: allowed 0.01..600.0"),
        ("hardware.bench_seconds", 601, "hardware.bench_seconds = 601.0: allowed 0.01..600.0"),
    ],
)
def test_bad_values_name_the_key_and_the_range(key: str, value: object, message: str) -> None:
    with pytest.raises(UserError) as err:
        build_config([{key: value}])
    assert message in str(err.value)


def test_unknown_hardware_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text("[hardware]\nnet_down = 5\n")
    with pytest.raises(UserError, match=r"unknown key hardware\.net_down"):
        load_config(path, environ={})
