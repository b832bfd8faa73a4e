"""Task specs: loading from TOML/JSON, and every bad field named in the error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from p2pnode.errors import UserError
from p2pnode.executor.spec import (
    MAX_INPUTS_BYTES,
    InputFile,
    TaskSpec,
    TaskSpecError,
    load_task_spec,
    task_spec_from_dict,
)

TOML = """
image = "localhost/busybox:latest"
command = ["sh", "-c", "cat data/in.txt > /results/out.txt"]
working_dir = "/job"
exposed_ports = [8080]

[env]
MODE = "fast"
A_FIRST = "1"

[[inputs]]
path = "data/in.txt"
content = "hello\\n"

[[inputs]]
path = "blob.bin"
content_b64 = "AAEC"
mode = 0o600
"""


def test_toml_task_file(tmp_path: Path) -> None:
    path = tmp_path / "task.toml"
    path.write_text(TOML)
    spec = load_task_spec(path)
    assert spec.image == "localhost/busybox:latest"
    assert spec.command == ("sh", "-c", "cat data/in.txt > /results/out.txt")
    assert spec.env == (("A_FIRST", "1"), ("MODE", "fast"))  # sorted by name
    assert spec.working_dir == "/job"
    assert spec.exposed_ports == (8080,)
    assert spec.inputs == (
        InputFile("data/in.txt", b"hello\n"),
        InputFile("blob.bin", b"\x00\x01\x02", 0o600),
    )


def test_json_round_trip(tmp_path: Path) -> None:
    spec = TaskSpec(
        image="localhost/busybox@sha256:" + "ab" * 32,
        command=("echo", "hi"),
        env=(("X", "1"),),
        inputs=(InputFile("a.txt", b"\xff\x00"),),
    )
    spec.validate()
    path = tmp_path / "task.json"
    path.write_text(json.dumps(spec.to_dict()))
    assert load_task_spec(path) == spec
    assert task_spec_from_dict(spec.to_dict()) == spec


def test_image_id_and_default_command() -> None:
    spec = task_spec_from_dict({"image": "sha256:" + "0" * 64})
    assert spec.command == () and spec.working_dir == "/work"


BASE = {"image": "busybox"}

BAD = [
    ({}, "image", "required"),
    ({"image": "Bad Image!"}, "image", "not an image reference"),
    ({"image": "x" * 300}, "image", "at most 255"),
    ({"command": "echo hi"}, "command", "list of strings"),
    ({"command": ["a"] * 300}, "command", "at most 256"),
    ({"command": ["x" * 5000]}, "command[0]", "at most 4096"),
    ({"command": [1]}, "command[0]", "string expected"),
    ({"env": {"1BAD": "x"}}, "env.1BAD", "letters, digits"),
    ({"env": {"A": 1}}, "env.A", "string value"),
    ({"env": {"A": "x" * 5000}}, "env.A", "at most 4096"),
    ({"working_dir": "relative"}, "working_dir", "absolute"),
    ({"working_dir": "/a/../b"}, "working_dir", "normalised"),
    ({"working_dir": "/results"}, "working_dir", "reserved"),
    ({"working_dir": "/proc/self"}, "working_dir", "reserved"),
    ({"exposed_ports": [0]}, "exposed_ports[0]", "1..65535"),
    ({"exposed_ports": [80, 80]}, "exposed_ports", "duplicate"),
    ({"exposed_ports": list(range(1, 20))}, "exposed_ports", "at most 16"),
    ({"inputs": [{"path": "/etc/passwd", "content": ""}]}, "inputs[0].path", "relative"),
    ({"inputs": [{"path": "../up", "content": ""}]}, "inputs[0].path", "inside"),
    ({"inputs": [{"path": "a/./b", "content": ""}]}, "inputs[0].path", "normalised"),
    ({"inputs": [{"path": "a"}]}, "inputs[0]", "exactly one of"),
    ({"inputs": [{"path": "a", "content_b64": "!!"}]}, "inputs[0].content_b64", "base64"),
    ({"inputs": [{"path": "a", "content": "", "mode": 0o4755}]}, "inputs[0].mode", "0o777"),
    (
        {"inputs": [{"path": "a", "content": ""}, {"path": "a", "content": ""}]},
        "inputs[1].path",
        "duplicate",
    ),
    (
        {"inputs": [{"path": f"f{i}", "content": "x" * 300_000} for i in range(4)]},
        "inputs",
        f"at most {MAX_INPUTS_BYTES}",
    ),
    ({"privileged": True}, "privileged", "unknown key"),
]


@pytest.mark.parametrize(("override", "field", "words"), BAD)
def test_bad_field_is_named(override: dict, field: str, words: str) -> None:
    data = {**BASE, **override} if override else {}
    with pytest.raises(TaskSpecError) as info:
        task_spec_from_dict(data)
    assert info.value.field == field, str(info.value)
    assert words in str(info.value)


def test_unreadable_or_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot be read"):
        load_task_spec(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("image = ")
    with pytest.raises(UserError, match="not valid TOML"):
        load_task_spec(bad)
    huge = tmp_path / "huge.json"
    huge.write_bytes(b" " * (2 * MAX_INPUTS_BYTES + 10))
    with pytest.raises(UserError, match="over"):
        load_task_spec(huge)
