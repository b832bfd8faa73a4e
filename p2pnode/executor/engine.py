"""The container engine, through the Docker Engine API (the `docker` SDK).

Every method blocks; the executor calls them in worker threads
(`trio.to_thread.run_sync`). Engine failures become `EngineError` (our machine's
fault, a LocalError) with the engine's own message, so an operator sees what the
engine said rather than an HTTP stack trace. Works with a Docker engine and with
podman's Docker-compatible service (docs/executor.md says which versions).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import _create_container_args

from p2pnode.errors import LocalError

log = logging.getLogger(__name__)

PODMAN_SOCKET = "/tmp/podman.sock"
API_TIMEOUT = 30.0


class EngineError(LocalError):
    """The container engine is unreachable or refused a request."""


class EngineUnavailable(EngineError):
    """Nothing answers at the engine address."""


class ImageMissing(EngineError):
    """The image is neither present nor pullable."""


def engine_address(configured: str = "", environ: Mapping[str, str] | None = None) -> str:
    """The configured address, else DOCKER_HOST, else podman's socket if it exists,
    else "" (the SDK's default, /var/run/docker.sock)."""
    env = os.environ if environ is None else environ
    if configured:
        return configured
    if env.get("DOCKER_HOST"):
        return env["DOCKER_HOST"]
    if os.path.exists(PODMAN_SOCKET):
        return f"unix://{PODMAN_SOCKET}"
    return ""


@dataclass(frozen=True)
class ContainerState:
    container_id: str
    status: str  # created | running | exited | ...
    running: bool
    exit_code: int
    oom_killed: bool
    error: str  # the engine's start error, if any
    pid: int
    started_at: float | None  # unix seconds
    finished_at: float | None
    image_id: str
    labels: dict[str, str]
    ports: dict[int, int]  # container TCP port -> host port, for published ports


_FRACTION = re.compile(r"\.(\d+)")


def parse_engine_time(text: str | None) -> float | None:
    """RFC 3339 with nanoseconds ('2026-11-26T09:33:01.0715038Z'); the zero time is None."""
    if not text or text.startswith("0001-01-01"):
        return None
    text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
    text = text.replace("Z", "+00:00")
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _explain(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError):
        return str(exc.explanation or exc)
    return str(exc)


class Engine:
    """One SDK client; its HTTP connection pool is shared by the worker threads."""

    def __init__(self, address: str = "", *, timeout: float = API_TIMEOUT) -> None:
        self.address = address
        try:
            if address:
                self.client = docker.DockerClient(base_url=address, timeout=int(timeout))
            else:
                self.client = docker.from_env(timeout=int(timeout))
        except docker.errors.DockerException as exc:
            raise EngineUnavailable(
                f"container engine {address or '(default)'} does not answer "
                f"(set executor.engine or DOCKER_HOST; scripts/setup-engine sets up podman): {exc}"
            ) from None
        self._storage_size: bool | None = None
        self._cgroup_driver: str | None = None
        self._lock = threading.Lock()
        self._streams: Any = None  # a client without a read timeout, for log streams

    @classmethod
    def connect(cls, address: str = "") -> Engine:
        """Connect and check the engine answers, with a clear error when it does not."""
        engine = cls(address)
        engine.ping()
        return engine

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except docker.errors.ImageNotFound as exc:
            raise ImageMissing(f"{what}: {_explain(exc)}") from None
        except docker.errors.APIError as exc:
            raise EngineError(f"{what}: the engine answered: {_explain(exc)}") from None
        except requests.exceptions.JSONDecodeError as exc:
            raise EngineError(f"{what}: the engine answered something not JSON: {exc}") from None
        except requests.exceptions.ReadTimeout as exc:
            raise EngineError(f"{what}: the engine did not answer in time: {exc}") from None
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
            raise EngineUnavailable(
                f"{what}: container engine {self.address or '(default)'} does not answer: {exc}"
            ) from None

    def ping(self) -> None:
        self._call("ping", self.client.ping)

    def version(self) -> dict[str, Any]:
        return dict(self._call("version", self.client.version))

    def close(self) -> None:
        self.client.close()
        if self._streams is not None:
            self._streams.close()

    def _stream_client(self) -> Any:
        """The API client log streams use: a followed log is quiet for as long as the
        task writes nothing to that stream, which is no reason to give up on it (with
        the client's read timeout, a task silent on stderr for 30 s lost its logs)."""
        with self._lock:
            if self._streams is None:
                version = self.client.api.api_version  # known: no second version probe
                if self.address:
                    self._streams = docker.APIClient(
                        base_url=self.address, timeout=None, version=version
                    )
                else:
                    self._streams = docker.from_env(timeout=None, version=version).api
            return self._streams

    # -- images -----------------------------------------------------------

    def image(self, reference: str, *, pull: bool = True) -> Any:
        """The local image; pulled when absent and `pull` (fails cleanly offline)."""
        try:
            return self._call(f"image {reference}", lambda: self.client.images.get(reference))
        except ImageMissing:
            if not pull or reference.startswith("sha256:"):
                raise
        try:
            return self._call(f"pull {reference}", lambda: self.client.images.pull(reference))
        except EngineError as exc:
            raise ImageMissing(
                f"image {reference} is not present and cannot be pulled: {exc}"
            ) from None

    # -- containers -------------------------------------------------------

    def create(self, options: dict[str, Any]) -> str:
        opts = dict(options)
        image = opts.pop("image")
        command = opts.pop("command")
        opts.pop("detach", None)
        opts.update(image=image, command=command, version=self.client.api._version)
        # the SDK's own mapping of create()'s keywords to the API's body (what
        # containers.create does), then the low-level call: the high-level one inspects
        # the new container afterwards, a round trip the start path does not need
        kwargs = _create_container_args(opts)
        created = self._call("create", lambda: self.client.api.create_container(**kwargs))
        return str(created["Id"])

    def storage_size_supported(self) -> bool:
        """Whether the engine enforces `storage_opt size` (needs e.g. overlay on xfs with
        project quotas). Probed once, by creating (not starting) a container with it."""
        with self._lock:
            if self._storage_size is not None:
                return self._storage_size
        supported = False
        try:
            images = self._call("images", lambda: self.client.images.list())
            if images:
                c = self.client.containers.create(
                    images[0].id, ["true"], storage_opt={"size": "64m"}, network_mode="none"
                )
                c.remove(force=True)
                supported = True
        except (docker.errors.APIError, EngineError) as exc:
            log.info("the engine does not enforce a storage size: %s", _explain(exc))
        with self._lock:
            self._storage_size = supported
        return supported

    def cgroup_driver(self) -> str:
        """'cgroupfs' or 'systemd' (the form a cgroup parent must take), '' if unsaid."""
        if self._cgroup_driver is None:
            info = self._call("info", self.client.info)  # slow on podman: asked once
            self._cgroup_driver = str(info.get("CgroupDriver") or "")
        return self._cgroup_driver

    def start(self, container_id: str) -> None:
        self._call("start", lambda: self.client.api.start(container_id))

    def state(self, container_id: str) -> ContainerState | None:
        """None when the container does not exist (any more)."""
        try:
            attrs = self._call("inspect", lambda: self.client.api.inspect_container(container_id))
        except EngineError as exc:
            if "no such container" in str(exc).lower() or "not found" in str(exc).lower():
                return None
            raise
        return _state(attrs)

    def wait(self, container_id: str) -> int:
        """Block until the container stops; its exit code."""
        result = self._call("wait", lambda: self.client.api.wait(container_id, timeout=None))
        return int(result.get("StatusCode", -1))

    def stop(self, container_id: str, grace: float) -> None:
        try:
            self._call("stop", lambda: self.client.api.stop(container_id, timeout=int(grace)))
        except EngineError as exc:
            if "no such container" not in str(exc).lower():
                raise

    def remove(self, container_id: str) -> None:
        try:
            self._call("remove", lambda: self.client.api.remove_container(container_id, force=True))
        except EngineError as exc:
            if "no such container" not in str(exc).lower():
                raise

    def find(self, labels: Mapping[str, str]) -> list[ContainerState]:
        """Containers (running or not) carrying all these labels."""
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        found = self._call("list", lambda: self.client.api.containers(all=True, filters=filters))
        out = []
        for item in found:
            state = self.state(str(item["Id"]))
            if state is not None:
                out.append(state)
        return out

    def logs(self, container_id: str, *, stdout: bool) -> Iterator[bytes]:
        """One stream (stdout or stderr) from the container's start, following until it
        stops. Two such streams keep the two apart: the multiplexed stream would need
        its frame headers, which the SDK drops when it follows."""
        stream = self._call(
            "logs",
            lambda: self._stream_client().logs(
                container_id, stream=True, follow=True, stdout=stdout, stderr=not stdout
            ),
        )
        try:
            yield from stream
        except (requests.exceptions.RequestException, docker.errors.DockerException) as exc:
            raise EngineUnavailable(f"logs of {container_id[:12]}: stream broke: {exc}") from None

    def stats_once(self, container_id: str) -> dict[str, Any]:
        return dict(self._call("stats", lambda: self.client.api.stats(container_id, stream=False)))


def _state(attrs: Mapping[str, Any]) -> ContainerState:
    st = attrs.get("State") or {}
    config = attrs.get("Config") or {}
    return ContainerState(
        container_id=str(attrs.get("Id", "")),
        status=str(st.get("Status", "")),
        running=bool(st.get("Running", False)),
        exit_code=int(st.get("ExitCode", -1) or 0),
        oom_killed=bool(st.get("OOMKilled", False)),
        error=str(st.get("Error") or ""),
        pid=int(st.get("Pid") or 0),
        started_at=parse_engine_time(st.get("StartedAt")),
        finished_at=parse_engine_time(st.get("FinishedAt")),
        image_id=str(attrs.get("Image", "")),
        labels=dict(config.get("Labels") or {}),
        ports=_published(attrs),
    )


def _published(attrs: Mapping[str, Any]) -> dict[int, int]:
    out: dict[int, int] = {}
    ports = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    for key, bindings in ports.items():
        port, _, proto = str(key).partition("/")
        for b in bindings or []:
            host_port = str((b or {}).get("HostPort") or "")
            if proto == "tcp" and port.isdigit() and host_port.isdigit():
                out[int(port)] = int(host_port)
                break
    return out
