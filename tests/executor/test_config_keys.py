"""The executor's config keys: defaults, the environment, and errors naming the key."""

from __future__ import annotations

import pytest

from p2pnode.config import load_config
from p2pnode.errors import UserError
from p2pnode.executor import ExecutorSettings


def test_defaults_allow_no_image() -> None:
    config = load_config(None, environ={})
    assert config.executor.allowed_images == ()
    assert config.executor.engine == ""
    settings = ExecutorSettings.from_config(config)
    assert settings.log_max_bytes == 16 * 2**20


def test_environment() -> None:
    config = load_config(
        None,
        environ={
            "SONM_EXECUTOR_ENGINE": "unix:///tmp/podman.sock",
            "SONM_EXECUTOR_ALLOWED_IMAGES": "localhost/busybox:latest, sha256:" + "a" * 64,
            "SONM_EXECUTOR_LOG_MAX_BYTES": "65536",
        },
    )
    assert config.executor.allowed_images == ("localhost/busybox:latest", "sha256:" + "a" * 64)
    assert ExecutorSettings.from_config(config).log_max_bytes == 65536


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("executor.engine", "http://x", "executor.engine"),
        ("executor.log_max_bytes", 10, "executor.log_max_bytes = 10: allowed 4096"),
        ("executor.allowed_images", ("bad image",), "executor.allowed_images[0]"),
        ("executor.allowed_images", ("x",) * 300, "allowed 0..256"),
    ],
)
def test_bad_values_name_the_key(key: str, value: object, words: str) -> None:
    with pytest.raises(UserError, match=words.replace("[", r"\[").replace("]", r"\]")):
        load_config(None, environ={}, overrides={key: value})
