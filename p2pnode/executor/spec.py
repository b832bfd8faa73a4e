"""The task a consumer asks a supplier to run: image, command, environment, inputs.

A spec arrives from another party, so every field has a size cap and a shape
check, and every error names the field (`TaskSpecError.field`). Inputs are small
files carried inline, and larger blobs named by sha256 and size that the hub fetches
back from the consumer and checks (p2pnode/market/blobs.py); both are written into
the task's work directory before the container starts. The spec is loaded from a
TOML or JSON task file, or from the same dict shape when it arrives over the wire
(`to_dict` / `task_spec_from_dict`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import posixpath
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2pnode.errors import UserError

MAX_IMAGE_BYTES = 255
MAX_ARGS = 256
MAX_ARG_BYTES = 4096
MAX_COMMAND_BYTES = 64 * 1024
MAX_ENV = 128
MAX_ENV_NAME_BYTES = 128
MAX_ENV_VALUE_BYTES = 4096
MAX_PATH_BYTES = 255
MAX_PORTS = 16
MAX_INPUTS = 64
MAX_INPUTS_BYTES = 1024 * 1024  # inline inputs together
MAX_SPEC_FILE_BYTES = 2 * MAX_INPUTS_BYTES  # base64 inputs plus the rest
MAX_BLOBS = 16  # inputs fetched by hash; a hub caps their sizes lower (TaskParams)
MAX_BLOB_BYTES = 2**40  # what any spec may name for one blob

DEFAULT_WORKING_DIR = "/work"
RESULTS_DIR = "/results"
# Mounting the work dir over these would hide what the container needs to run at all.
_RESERVED_DIRS = ("/", "/proc", "/sys", "/dev", RESULTS_DIR, "/tmp")

# A docker image reference: [registry[:port]/]path[:tag][@digest], or a bare image id.
_IMAGE = re.compile(
    r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?\Z"
)
_IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}\Z")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class TaskSpecError(UserError):
    """A task spec is malformed or over a cap; `field` names where."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"task spec: {field}: {problem}")
        self.field = field
        self.problem = problem


def _utf8_len(field: str, value: object, cap: int, *, allow_newlines: bool = False) -> str:
    if not isinstance(value, str):
        raise TaskSpecError(field, f"string expected, got {type(value).__name__}")
    try:
        n = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise TaskSpecError(field, "not encodable as UTF-8") from None
    if n > cap:
        raise TaskSpecError(field, f"at most {cap} UTF-8 bytes, got {n}")
    if "\x00" in value:
        raise TaskSpecError(field, "NUL characters are not allowed")
    if not allow_newlines and _CONTROL.search(value):
        raise TaskSpecError(field, "control characters are not allowed")
    return value


def check_image_reference(field: str, image: object) -> str:
    text = _utf8_len(field, image, MAX_IMAGE_BYTES)
    if not (_IMAGE.match(text) or _IMAGE_ID.match(text)):
        raise TaskSpecError(
            field, f"not an image reference (name[:tag][@sha256:...] or sha256:<id>): {text!r}"
        )
    return text


@dataclass(frozen=True)
class InputFile:
    """A small file placed at `path` under the working directory before the task starts."""

    path: str  # relative, normalised, no '..'
    content: bytes
    mode: int = 0o644

    def validate(self, field: str) -> None:
        _check_path(f"{field}.path", self.path)
        if not isinstance(self.content, bytes):
            raise TaskSpecError(f"{field}.content", "bytes expected")
        _check_mode(f"{field}.mode", self.mode)


def _check_path(field: str, value: object) -> str:
    path = _utf8_len(field, value, MAX_PATH_BYTES)
    if not path or path.startswith("/") or posixpath.normpath(path) != path:
        raise TaskSpecError(field, f"a normalised relative path expected: {path!r}")
    if path == "." or path.split("/")[0] == "..":
        raise TaskSpecError(field, f"must stay inside the working dir: {path!r}")
    return path


def _check_mode(field: str, mode: object) -> None:
    if type(mode) is not int or not 0 <= mode <= 0o777:
        raise TaskSpecError(field, f"permission bits 0..0o777 expected: {mode!r}")


@dataclass(frozen=True)
class BlobInput:
    """A file too large to carry in the spec: named by its sha256 and size, fetched by
    the hub from the consumer over /sonm/task/1 and checked before the task starts."""

    path: str  # as InputFile.path
    sha256: bytes  # 32 bytes
    size: int
    mode: int = 0o644

    def validate(self, field: str) -> None:
        _check_path(f"{field}.path", self.path)
        if not isinstance(self.sha256, bytes) or len(self.sha256) != 32:
            raise TaskSpecError(f"{field}.sha256", "32 bytes (64 hex digits) expected")
        if type(self.size) is not int or not 0 <= self.size <= MAX_BLOB_BYTES:
            raise TaskSpecError(f"{field}.size", f"0..{MAX_BLOB_BYTES} bytes expected")
        _check_mode(f"{field}.mode", self.mode)


@dataclass(frozen=True)
class TaskSpec:
    image: str  # name[:tag], name@sha256:..., or an image id sha256:...
    command: tuple[str, ...] = ()  # empty: the image's default command
    env: tuple[tuple[str, str], ...] = ()  # sorted by name, names unique
    working_dir: str = DEFAULT_WORKING_DIR
    exposed_ports: tuple[int, ...] = ()  # TCP ports published when the slot allows inbound
    inputs: tuple[InputFile, ...] = ()
    blobs: tuple[BlobInput, ...] = ()

    @property
    def blob_bytes(self) -> int:
        return sum(b.size for b in self.blobs)

    def validate(self) -> None:
        check_image_reference("image", self.image)
        if not isinstance(self.command, tuple) or len(self.command) > MAX_ARGS:
            raise TaskSpecError("command", f"a list of at most {MAX_ARGS} arguments expected")
        total = 0
        for i, arg in enumerate(self.command):
            total += len(_utf8_len(f"command[{i}]", arg, MAX_ARG_BYTES, allow_newlines=True))
        if total > MAX_COMMAND_BYTES:
            raise TaskSpecError("command", f"at most {MAX_COMMAND_BYTES} bytes in all, got {total}")
        if not isinstance(self.env, tuple) or len(self.env) > MAX_ENV:
            raise TaskSpecError("env", f"at most {MAX_ENV} variables expected")
        names = []
        for pair in self.env:
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise TaskSpecError("env", "(name, value) pairs expected")
            name, value = pair
            _utf8_len("env", name, MAX_ENV_NAME_BYTES)
            if not _ENV_NAME.match(name):
                raise TaskSpecError(f"env.{name}", "a name of letters, digits and '_' expected")
            _utf8_len(f"env.{name}", value, MAX_ENV_VALUE_BYTES, allow_newlines=True)
            names.append(name)
        if names != sorted(set(names)):
            raise TaskSpecError("env", "names must be unique and sorted")
        wd = _utf8_len("working_dir", self.working_dir, MAX_PATH_BYTES)
        if not wd.startswith("/") or posixpath.normpath(wd) != wd or "/../" in wd + "/":
            raise TaskSpecError("working_dir", f"a normalised absolute path expected: {wd!r}")
        if wd in _RESERVED_DIRS or wd.startswith(("/proc/", "/sys/", "/dev/", "/results/")):
            raise TaskSpecError("working_dir", f"{wd!r} is reserved")
        if not isinstance(self.exposed_ports, tuple) or len(self.exposed_ports) > MAX_PORTS:
            raise TaskSpecError("exposed_ports", f"at most {MAX_PORTS} ports expected")
        for i, port in enumerate(self.exposed_ports):
            if type(port) is not int or not 1 <= port <= 65535:
                raise TaskSpecError(f"exposed_ports[{i}]", f"a port 1..65535 expected: {port!r}")
        if len(set(self.exposed_ports)) != len(self.exposed_ports):
            raise TaskSpecError("exposed_ports", "duplicate ports")
        if not isinstance(self.inputs, tuple) or len(self.inputs) > MAX_INPUTS:
            raise TaskSpecError("inputs", f"at most {MAX_INPUTS} files expected")
        size = 0
        paths: set[str] = set()
        for i, item in enumerate(self.inputs):
            if not isinstance(item, InputFile):
                raise TaskSpecError(f"inputs[{i}]", "an input file expected")
            item.validate(f"inputs[{i}]")
            if item.path in paths:
                raise TaskSpecError(f"inputs[{i}].path", f"duplicate path {item.path!r}")
            paths.add(item.path)
            size += len(item.content)
        if size > MAX_INPUTS_BYTES:
            raise TaskSpecError("inputs", f"at most {MAX_INPUTS_BYTES} bytes inline, got {size}")
        if not isinstance(self.blobs, tuple) or len(self.blobs) > MAX_BLOBS:
            raise TaskSpecError("blobs", f"at most {MAX_BLOBS} blobs expected")
        for i, blob in enumerate(self.blobs):
            if not isinstance(blob, BlobInput):
                raise TaskSpecError(f"blobs[{i}]", "a blob input expected")
            blob.validate(f"blobs[{i}]")
            if blob.path in paths:
                raise TaskSpecError(f"blobs[{i}].path", f"duplicate path {blob.path!r}")
            paths.add(blob.path)
        # one file may not be another's directory: both are written under the work dir
        for path in paths:
            parts = path.split("/")
            for n in range(1, len(parts)):
                if "/".join(parts[:n]) in paths:
                    raise TaskSpecError("inputs", f"{path!r} is under another input's path")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; `task_spec_from_dict` reads it back to an equal spec."""
        return {
            "image": self.image,
            "command": list(self.command),
            "env": dict(self.env),
            "working_dir": self.working_dir,
            "exposed_ports": list(self.exposed_ports),
            "inputs": [
                {
                    "path": f.path,
                    "content_b64": base64.b64encode(f.content).decode(),
                    "mode": f.mode,
                }
                for f in self.inputs
            ],
            "blobs": [
                {"path": b.path, "sha256": b.sha256.hex(), "size": b.size, "mode": b.mode}
                for b in self.blobs
            ],
        }


_KEYS = ("image", "command", "env", "working_dir", "exposed_ports", "inputs", "blobs")


def task_spec_from_dict(data: object) -> TaskSpec:
    """Build and validate a spec from the TOML/JSON shape (see docs/executor.md)."""
    if not isinstance(data, Mapping):
        raise TaskSpecError("spec", "a table/object expected")
    for key in data:
        if key not in _KEYS:
            raise TaskSpecError(str(key), f"unknown key; allowed {', '.join(_KEYS)}")
    if "image" not in data:
        raise TaskSpecError("image", "required")
    command = data.get("command", [])
    if isinstance(command, str) or not isinstance(command, list | tuple):
        raise TaskSpecError("command", "a list of strings expected")
    env = data.get("env", {})
    if not isinstance(env, Mapping):
        raise TaskSpecError("env", "a table of NAME = value expected")
    for name, value in env.items():
        if not isinstance(value, str):
            raise TaskSpecError(f"env.{name}", "a string value expected")
    ports = data.get("exposed_ports", [])
    if not isinstance(ports, list | tuple):
        raise TaskSpecError("exposed_ports", "a list of ports expected")
    raw_inputs = data.get("inputs", [])
    if not isinstance(raw_inputs, list | tuple):
        raise TaskSpecError("inputs", "a list of files expected")
    if len(raw_inputs) > MAX_INPUTS:
        raise TaskSpecError("inputs", f"at most {MAX_INPUTS} files expected")
    inputs = tuple(_input_from_dict(f"inputs[{i}]", item) for i, item in enumerate(raw_inputs))
    raw_blobs = data.get("blobs", [])
    if not isinstance(raw_blobs, list | tuple):
        raise TaskSpecError("blobs", "a list of blobs expected")
    if len(raw_blobs) > MAX_BLOBS:
        raise TaskSpecError("blobs", f"at most {MAX_BLOBS} blobs expected")
    blobs = tuple(_blob_from_dict(f"blobs[{i}]", item) for i, item in enumerate(raw_blobs))
    spec = TaskSpec(
        image=data["image"],
        command=tuple(command),
        env=tuple(sorted((str(k), v) for k, v in env.items())),
        working_dir=data.get("working_dir", DEFAULT_WORKING_DIR),
        exposed_ports=tuple(ports),
        inputs=inputs,
        blobs=blobs,
    )
    spec.validate()
    return spec


_SHA256_HEX = re.compile(r"[0-9a-f]{64}\Z")


def _blob_from_dict(field: str, item: object) -> BlobInput:
    if not isinstance(item, Mapping):
        raise TaskSpecError(field, "a table with path, sha256 and size expected")
    for key in item:
        if key not in ("path", "sha256", "size", "mode"):
            raise TaskSpecError(f"{field}.{key}", "unknown key; allowed path, sha256, size, mode")
    for key in ("path", "sha256", "size"):
        if key not in item:
            raise TaskSpecError(f"{field}.{key}", "required")
    digest = item["sha256"]
    if not isinstance(digest, str) or not _SHA256_HEX.match(digest):
        raise TaskSpecError(f"{field}.sha256", "64 lowercase hex digits expected")
    return BlobInput(
        path=item["path"],
        sha256=bytes.fromhex(digest),
        size=item["size"],
        mode=item.get("mode", 0o644),
    )


def _input_from_dict(field: str, item: object) -> InputFile:
    if not isinstance(item, Mapping):
        raise TaskSpecError(field, "a table with path and content (or content_b64) expected")
    for key in item:
        if key not in ("path", "content", "content_b64", "mode"):
            raise TaskSpecError(
                f"{field}.{key}", "unknown key; allowed path, content, content_b64, mode"
            )
    if ("content" in item) == ("content_b64" in item):
        raise TaskSpecError(field, "exactly one of content (text) or content_b64 expected")
    if "content" in item:
        text = item["content"]
        if not isinstance(text, str):
            raise TaskSpecError(f"{field}.content", "a string expected")
        if len(text) > MAX_INPUTS_BYTES:
            raise TaskSpecError(f"{field}.content", f"at most {MAX_INPUTS_BYTES} bytes")
        content = text.encode("utf-8", "surrogatepass")
    else:
        b64 = item["content_b64"]
        if not isinstance(b64, str) or len(b64) > MAX_INPUTS_BYTES * 4 // 3 + 4:
            raise TaskSpecError(
                f"{field}.content_b64", f"base64 of at most {MAX_INPUTS_BYTES} bytes"
            )
        try:
            content = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise TaskSpecError(f"{field}.content_b64", "not valid base64") from None
    mode = item.get("mode", 0o644)
    path = item.get("path")
    if not isinstance(path, str):
        raise TaskSpecError(f"{field}.path", "a string expected")
    return InputFile(path=path, content=content, mode=mode)


def load_task_spec(path: Path) -> TaskSpec:
    """A task file: TOML (`.toml`) or JSON (anything else), at most MAX_SPEC_FILE_BYTES."""
    return load_task_file(path)[0]


def load_task_file(path: Path) -> tuple[TaskSpec, dict[str, Path]]:
    """A task file and where its blobs are on this machine: a blob given as `file =
    "local/path"` (relative to the task file) is hashed here into its sha256 and size;
    the map is blob path -> local file, for the consumer's node to serve."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_SPEC_FILE_BYTES + 1)
    except OSError as exc:
        raise UserError(f"task file {path} cannot be read: {exc.strerror}") from None
    if len(raw) > MAX_SPEC_FILE_BYTES:
        raise UserError(f"task file {path} is over {MAX_SPEC_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        kind = "TOML" if path.suffix == ".toml" else "JSON"
        raise UserError(f"task file {path} is not valid {kind}: {exc}") from None
    files: dict[str, Path] = {}
    if isinstance(data, dict) and isinstance(data.get("blobs"), list):
        blobs = []
        for i, item in enumerate(data["blobs"][:MAX_BLOBS]):
            if isinstance(item, Mapping) and "file" in item:
                local = item["file"]
                if not isinstance(local, str):
                    raise TaskSpecError(f"blobs[{i}].file", "a path expected")
                source = (path.parent / local).expanduser().resolve()
                digest, size = hash_file(source)
                rest = {k: v for k, v in item.items() if k != "file"}
                item = {**rest, "sha256": digest.hex(), "size": size}
                if isinstance(rest.get("path"), str):
                    files[rest["path"]] = source
            blobs.append(item)
        data = {**data, "blobs": blobs + data["blobs"][MAX_BLOBS:]}
    return task_spec_from_dict(data), files


def hash_file(path: Path) -> tuple[bytes, int]:
    """sha256 and size of a local file (UserError when it cannot be read)."""
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as fh:
            while block := fh.read(1024 * 1024):
                digest.update(block)
                size += len(block)
    except OSError as exc:
        raise UserError(f"blob file {path} cannot be read: {exc.strerror}") from None
    return digest.digest(), size
