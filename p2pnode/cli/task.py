"""`sonm-p2p task start|logs|results DEAL`: a consumer's task on its deal's hub,
through the node's local API (which speaks /sonm/task/1 to the hub)."""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from p2pnode.cli.common import (
    add_config_options,
    api_base,
    api_call,
    check_response,
    config_from_args,
)
from p2pnode.errors import UserError
from p2pnode.executor.spec import hash_file, load_task_file, task_spec_from_dict

START_TIMEOUT = 120.0  # the hub checks the image and creates the container first
BLOB_RATE = 1_000_000  # bytes/s: the start's wait grows with its blobs (as the node's)
RESULTS_TIMEOUT = 3600.0
RESUME_WINDOW = 120.0  # seconds a follower keeps trying to reach its node again


def register(subparsers: Any) -> None:
    task = subparsers.add_parser(
        "task", help="a deal's task: start it, read its logs, fetch results"
    )
    sub = task.add_subparsers(dest="task_command", metavar="ACTION", required=True)
    start = sub.add_parser(
        "start", help="send a task to the deal's hub: --image IMG -- CMD..., or --file task.toml"
    )
    add_config_options(start)
    # options may follow DEAL and the command follows `--`: parsed again, intermixed
    start.add_argument(
        "words",
        nargs=argparse.REMAINDER,
        metavar="DEAL [--image IMG | --file FILE] [--env N=V] [--blob PATH=FILE] [--workdir DIR] "
        "[--json] -- CMD",
    )
    start.set_defaults(func=cmd_start)
    logs = sub.add_parser("logs", help="the task's stdout and stderr, from the hub")
    add_config_options(logs)
    logs.add_argument("deal_id", type=int, metavar="DEAL")
    logs.add_argument("--follow", "-f", action="store_true", help="until the task ends")
    logs.add_argument("--tail", type=int, default=0, metavar="N", help="last N lines of each")
    logs.add_argument(
        "--since",
        metavar="T",
        help="output written since T: a duration back from now (90s, 5m, 1h30m) or a time "
        "(unix seconds, or ISO 8601; UTC unless it names a zone)",
    )
    logs.set_defaults(func=cmd_logs)
    results = sub.add_parser("results", help="download, verify and unpack the task's results")
    add_config_options(results)
    results.add_argument("deal_id", type=int, metavar="DEAL")
    results.add_argument("-o", "--output", required=True, metavar="DIR")
    results.add_argument("--json", action="store_true")
    results.set_defaults(func=cmd_results)


def _start_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sonm-p2p task start", add_help=False)
    p.add_argument("deal_id", type=int, metavar="DEAL")
    p.add_argument("--image", metavar="IMG", help="image name or digest")
    p.add_argument("--file", metavar="FILE", help="a task file (TOML or JSON)")
    p.add_argument("--env", action="append", metavar="NAME=VALUE", default=[])
    p.add_argument("--blob", action="append", metavar="PATH=FILE", default=[])
    p.add_argument("--workdir", metavar="DIR")
    p.add_argument("--json", action="store_true")
    p.add_argument("cmd", nargs="*", metavar="CMD")
    return p


def parse_start(words: list[str]) -> argparse.Namespace:
    """DEAL, the options and `-- CMD...` in any order."""
    parser = _start_parser()
    try:
        return parser.parse_intermixed_args(words)
    except SystemExit:
        raise UserError("usage: task start DEAL --image IMG [--env N=V] -- CMD...") from None


def spec_body(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Path]]:
    """The spec from --file or --image/-- CMD (checked here as the hub will), and the
    local file of each blob, which the node serves to the hub while it answers."""
    cmd = list(args.cmd or [])
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if args.file:
        if args.image or cmd or args.env or args.workdir or args.blob:
            raise UserError(
                "--file holds the whole task: no --image, --env, --blob, --workdir or CMD"
            )
        spec, files = load_task_file(Path(args.file))
        return spec.to_dict(), files
    if not args.image:
        raise UserError("name the image (--image IMG -- CMD...) or a task file (--file)")
    env = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--env {item!r}: NAME=VALUE expected")
        env[name] = value
    blobs, files = [], {}
    for item in args.blob:
        path, sep, local = item.partition("=")
        if not sep or not local:
            raise UserError(f"--blob {item!r}: PATH=FILE expected")
        source = Path(local).expanduser().resolve()
        digest, size = hash_file(source)
        blobs.append({"path": path, "sha256": digest.hex(), "size": size})
        files[path] = source
    data: dict[str, Any] = {"image": args.image, "command": cmd, "env": env, "blobs": blobs}
    if args.workdir:
        data["working_dir"] = args.workdir
    return task_spec_from_dict(data).to_dict(), files


def api_body(spec: dict[str, Any], files: dict[str, Path] | None = None) -> dict[str, Any]:
    """The task file's shape as the API takes it: inputs and blobs keyed by path, each
    blob with the local file the node serves it from."""
    inputs = {
        f["path"]: {"content_b64": f["content_b64"], "mode": f["mode"]} for f in spec["inputs"]
    }
    blobs = {
        b["path"]: {
            "file": str((files or {})[b["path"]]),
            "sha256": b["sha256"],
            "size": b["size"],
            "mode": b["mode"],
        }
        for b in spec.get("blobs", [])
    }
    return {**spec, "inputs": inputs, "blobs": blobs}


def cmd_start(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    words = parse_start(list(args.words))
    spec, files = spec_body(words)
    body = api_body(spec, files)
    path = f"/tasks/{words.deal_id}"
    wait = START_TIMEOUT + sum(b["size"] for b in spec["blobs"]) / BLOB_RATE
    result = api_call(config, "POST", path, body=body, timeout=wait)
    if words.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"task {result['task_id']} of deal {words.deal_id}: {result['answer']}")
    return 0


_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?\Z")


def parse_since(text: str, now: float) -> int:
    """--since as unix milliseconds: a duration back from `now` (90s, 5m, 1h30m), unix
    seconds, or an ISO 8601 time (UTC unless it names a zone)."""
    text = text.strip()
    match = _DURATION.match(text)
    if text and match and any(match.groups()):
        hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
        return max(0, int((now - hours * 3600 - minutes * 60 - seconds) * 1000))
    try:
        return max(0, int(float(text) * 1000))
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(
            f"--since {text!r}: a duration (90s, 5m, 1h30m), unix seconds or an ISO 8601 time"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)  # noqa: UP017
    return max(0, int(when.timestamp() * 1000))


class _Lost(Exception):
    """The node's API went away mid-follow (restarting?): resume where we are."""


def cmd_logs(args: argparse.Namespace) -> int:
    """Print the task's output; with --follow, until the task ends, across restarts
    of this node: each record says its byte offset, so a follower that loses its
    node asks again from exactly the bytes it has printed."""
    config = config_from_args(args)
    if args.tail < 0:
        raise UserError("--tail N: N >= 0")
    since_ms = parse_since(args.since, time.time()) if args.since else 0
    params: dict[str, Any] = {"follow": str(bool(args.follow)).lower(), "tail": args.tail}
    if since_ms:
        params["since_ms"] = since_ms
    pos: dict[str, int] = {}
    last_contact = time.monotonic()
    while True:
        try:
            if _follow_once(config, args.deal_id, params, pos):
                return 0
            last_contact = time.monotonic()
        except _Lost as lost:
            if not args.follow:
                raise UserError(f"logs of deal {args.deal_id}: {lost}") from None
            if time.monotonic() - last_contact > RESUME_WINDOW:
                raise UserError(
                    f"logs of deal {args.deal_id}: the node did not come back within "
                    f"{RESUME_WINDOW:.0f} s: {lost}"
                ) from None
            time.sleep(0.5)
        if pos:  # from now on, exactly what was not printed yet
            params = {
                "follow": "true",
                "from_stdout": pos.get("stdout", 0),
                "from_stderr": pos.get("stderr", 0),
            }


def _follow_once(config: Any, deal_id: int, params: dict[str, Any], pos: dict[str, int]) -> bool:
    """One request's records printed; True at the end record. _Lost when the node or
    its hub went away before it."""
    import httpx

    base, token = api_base(config)
    path = f"/tasks/{deal_id}/logs"
    out = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
    follow = params.get("follow") == "true"
    try:
        with httpx.stream(
            "GET",
            base + path,
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(10.0, read=None if follow else 60.0),
        ) as resp:
            if resp.status_code in (502, 503) or (
                resp.status_code == 401 and api_base(config)[1] != token
            ):
                resp.read()
                raise _Lost(f"the node answered {resp.status_code}: {resp.text[:200]}")
            if resp.status_code >= 400:
                resp.read()
                check_response(resp, "GET", path, base, config)
            for line in resp.iter_lines():
                if not line:
                    continue
                record = json.loads(line)
                stream = record["stream"]
                if stream == "error":
                    raise _Lost(record["error"])
                if stream == "end":
                    return True
                if stream in out:
                    data = base64.b64decode(record["data"])
                    out[stream].write(data)
                    out[stream].flush()
                    pos[stream] = int(record["offset"]) + len(data)
    except httpx.HTTPError as exc:
        raise _Lost(f"the node's API at {base}: {exc}") from None
    raise _Lost("the stream ended before the task's end record")


def cmd_results(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    dest = Path(args.output).expanduser().resolve()
    result = api_call(
        config,
        "POST",
        f"/tasks/{args.deal_id}/results",
        body={"dest": str(dest)},
        timeout=RESULTS_TIMEOUT,
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        receipt = result["receipt"]
        print(
            f"deal {args.deal_id}: {len(result['files'])} entries in {dest}; receipt verified "
            f"(exit {receipt['exit_code']}, {receipt['reason']}, "
            f"results sha256 {receipt['results_sha256']})"
        )
    return 0
