"""Tasks on the local API, the consumer's side of a deal's task:
POST /tasks/{deal_id} (hand the spec to the hub), GET /tasks/{deal_id}/logs
(NDJSON, one record a line), POST /tasks/{deal_id}/results (download, verify,
unpack into a directory on this machine). On a hub, GET /tasks/{deal_id}/logs
follows a task it runs, from its own engine or relayed from the worker.

HTTP only; the tasks service (p2pnode/market/tasksvc.py) does the work. A refusal
by the hub is a 409 with its reason; a hub that cannot be reached, or whose answer
does not check out (a results archive that does not match the signed receipt), a 502.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path as FsPath
from typing import Annotated, Any

import trio
from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from p2pnode.api.errors import error, unprocessable
from p2pnode.api.state import NodeDep
from p2pnode.errors import LocalError, RemoteError, UserError
from p2pnode.executor.spec import _IMAGE as _IMAGE_RE
from p2pnode.executor.spec import (
    DEFAULT_WORKING_DIR,
    MAX_BLOB_BYTES,
    MAX_BLOBS,
    TaskSpecError,
    task_spec_from_dict,
)
from p2pnode.market import taskwire
from p2pnode.market.tasksvc import HubRefused, TaskService, UnknownDeal, log_json

router = APIRouter(tags=["tasks"])

# deal ids as the node's SQLite stores them (the registry counts from 1)
DealId = Annotated[int, Path(ge=0, le=2**63 - 1, description="the deal's id on the registry")]

_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: error("no deal with this id that this node made as consumer or serves as hub"),
    409: error("the deal is not accepted, this node has no account, or the hub refused"),
    502: error("the hub cannot be reached, or what it sent does not check out"),
    503: error("the tasks service is not running on this node"),
}


# The spec's checks (p2pnode/executor/spec.py) as schema, so that /openapi.json states
# exactly what is taken: paths in printable ASCII (bytes = characters), arguments
# and values at most 1024 characters (4096 UTF-8 bytes at worst), no NUL. Counts are
# smaller than a task file may hold, so that one field one past its bound is still
# a request under the 64 KiB body cap (a 422 naming the field, not a 413).
API_MAX_ARGS = 32
API_MAX_ENV = 32
API_MAX_INPUTS = 8
API_MAX_INPUT_B64 = 4096  # 3 KiB a file
_SEGMENT = r"(?!\.\.?(?:/|$))[ -.0-~]+"
_WORKDIR = rf"^(?!/(?:proc|sys|dev|results)(?:/|$))(?!/tmp$)(?:/{_SEGMENT})+$"
_INPUT_PATH = rf"^{_SEGMENT}(?:/{_SEGMENT})*$"
_IMAGE = rf"^(?:{_IMAGE_RE.pattern.removesuffix(chr(92) + 'Z')}|sha256:[0-9a-f]{{64}})$"
_B64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
_NO_NUL = r"^[^\x00]*$"
_CLOSED: dict[str, Any] = {"additionalProperties": False}

Arg = Annotated[str, Field(max_length=1024, pattern=_NO_NUL)]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
InputPath = Annotated[str, Field(max_length=255, pattern=_INPUT_PATH)]
Port = Annotated[int, Field(ge=1, le=65535)]


class InputIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content_b64: str = Field(max_length=API_MAX_INPUT_B64, pattern=_B64)
    mode: int = Field(0o644, ge=0, le=0o777)


class BlobIn(BaseModel):
    """An input too large to inline: a file on this machine, served to the deal's hub
    (which checks size and sha256) while it answers the start."""

    model_config = ConfigDict(extra="forbid")
    file: str = Field(max_length=4096, pattern=r"^/[^\x00]*$", description="absolute path")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0, le=MAX_BLOB_BYTES)
    mode: int = Field(0o644, ge=0, le=0o777)


class TaskIn(BaseModel):
    """The task spec, as in a task file (docs/executor.md); inputs by path."""

    model_config = ConfigDict(extra="forbid", regex_engine="python-re")
    image: str = Field(max_length=255, pattern=_IMAGE)
    command: list[Arg] = Field(default_factory=list, max_length=API_MAX_ARGS)
    env: dict[EnvName, Arg] = Field(
        default_factory=dict, max_length=API_MAX_ENV, json_schema_extra=_CLOSED
    )
    working_dir: str = Field(DEFAULT_WORKING_DIR, max_length=255, pattern=_WORKDIR)
    exposed_ports: set[Port] = Field(default_factory=set, max_length=16)
    inputs: dict[InputPath, InputIn] = Field(
        default_factory=dict, max_length=API_MAX_INPUTS, json_schema_extra=_CLOSED
    )
    blobs: dict[InputPath, BlobIn] = Field(
        default_factory=dict, max_length=MAX_BLOBS, json_schema_extra=_CLOSED
    )

    @model_validator(mode="after")
    def _anchored(self) -> TaskIn:
        """Python's `$` also matches before a final newline; the document's (ECMA) does not."""
        names = [self.image, self.working_dir, *self.env, *self.inputs, *self.blobs]
        names += [b.file for b in self.blobs.values()]
        if any(n.endswith("\n") for n in names):
            raise ValueError("a name or path ends with a newline")
        return self

    def spec_dict(self) -> dict[str, Any]:
        """The task file's shape (`task_spec_from_dict`)."""
        return {
            "image": self.image,
            "command": list(self.command),
            "env": dict(self.env),
            "working_dir": self.working_dir,
            "exposed_ports": sorted(self.exposed_ports),
            "inputs": [
                {"path": path, "content_b64": f.content_b64, "mode": f.mode}
                for path, f in sorted(self.inputs.items())
            ],
            "blobs": [
                {"path": path, "sha256": b.sha256, "size": b.size, "mode": b.mode}
                for path, b in sorted(self.blobs.items())
            ],
        }

    def sources(self) -> dict[str, FsPath]:
        """Each blob's path in the spec -> the local file served for it."""
        return {path: FsPath(b.file) for path, b in self.blobs.items()}


class TaskStarted(BaseModel):
    deal_id: int
    task_id: str
    answer: str = Field(description="the hub's signed answer")


class ResultsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dest: str = Field(
        max_length=4096, pattern=r"^/[^\x00]*$", description="absolute directory path"
    )


class ResultsOut(BaseModel):
    deal_id: int
    dest: str
    archive: str = Field(description="the verified archive, kept in the node's data dir")
    files: list[str]
    receipt: dict[str, Any] = Field(description="the hub's signed receipt, verified")


def tasks(state: Any) -> TaskService:
    service = state.services.get("tasks")
    if not isinstance(service, TaskService):
        raise HTTPException(503, "the tasks service is not running on this node")
    return service


def _http(exc: Exception) -> HTTPException:
    if isinstance(exc, UnknownDeal):
        return HTTPException(404, str(exc))
    if isinstance(exc, HubRefused | UserError | LocalError):
        return HTTPException(409, str(exc))
    if isinstance(exc, RemoteError | trio.TooSlowError | OSError):
        return HTTPException(502, str(exc) or type(exc).__name__)
    return HTTPException(502, f"{type(exc).__name__}: {exc}")


@router.post("/tasks/{deal_id}", status_code=201, response_model=TaskStarted, responses=_RESPONSES)
async def start_task(deal_id: DealId, body: TaskIn, state: NodeDep) -> TaskStarted:
    """Send the task to the deal's hub, which checks and starts it before answering."""
    service = tasks(state)
    try:
        spec = task_spec_from_dict(body.spec_dict())
    except TaskSpecError as exc:
        raise unprocessable(["body", exc.field], exc.problem) from None
    try:
        answer = await service.start(deal_id, spec, body.sources())
    except Exception as exc:
        raise _http(exc) from None
    return TaskStarted(deal_id=deal_id, task_id=taskwire.task_id_of(deal_id), answer=answer)


@router.get(
    "/tasks/{deal_id}/logs",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "one JSON object a line: {stream: stdout|stderr|end, offset: int, "
            "data: base64}",
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        },
        **_RESPONSES,
    },
)
async def task_logs(
    deal_id: DealId,
    state: NodeDep,
    follow: bool = False,
    tail: int = Query(0, ge=0, le=taskwire.MAX_TAIL, description="last N lines; 0: all"),
    since_ms: int = Query(
        0, ge=0, le=2**63 - 1, description="output written at or after (unix ms); 0: all"
    ),
    from_stdout: int = Query(
        0,
        ge=0,
        le=2**63 - 1,
        description="resume stdout at this byte offset (since and tail then do not apply)",
    ),
    from_stderr: int = Query(0, ge=0, le=2**63 - 1, description="as from_stdout, for stderr"),
) -> StreamingResponse:
    """The task's output from the hub (on the hub: from its engine or its worker),
    stdout and stderr apart, each record with the
    byte offset of its data in its stream (the first two: where each stream starts,
    no data); the last record is `end` with the task's state. With `follow`, until
    the task ends."""
    service = tasks(state)
    start = {"stdout": from_stdout, "stderr": from_stderr}
    records = service.logs(deal_id, follow=follow, tail=tail, since_ms=since_ms, start=start)
    try:  # the hub's refusal or absence is an error status, not a broken stream
        first = await records.__anext__()
    except StopAsyncIteration:
        first = None
    except Exception as exc:
        await records.aclose()
        raise _http(exc) from None

    async def lines() -> AsyncIterator[bytes]:
        try:
            if first is not None:
                yield (json.dumps(log_json(*first)) + "\n").encode()
            async for item in records:
                yield (json.dumps(log_json(*item)) + "\n").encode()
        except Exception as exc:  # mid-stream: say so as the last line
            yield (json.dumps({"stream": "error", "data": "", "error": str(exc)}) + "\n").encode()
        finally:
            await records.aclose()

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.post("/tasks/{deal_id}/results", response_model=ResultsOut, responses=_RESPONSES)
async def task_results(deal_id: DealId, body: ResultsIn, state: NodeDep) -> ResultsOut:
    """Download the results archive and receipt, check the archive's sha256 against
    the receipt and the receipt's signature against the hub's account, then unpack
    into `dest` (links, absolute paths and '..' refused)."""
    service = tasks(state)
    try:
        got = await service.results(deal_id, FsPath(body.dest))
    except Exception as exc:
        raise _http(exc) from None
    return ResultsOut(
        deal_id=deal_id,
        dest=body.dest,
        archive=str(got.archive),
        files=got.files,
        receipt=got.receipt.to_dict(),
    )
