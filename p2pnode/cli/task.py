"""`sonm-p2p task start|logs|results DEAL`: a consumer's task on its deal's hub,
through the node's local API (which speaks /sonm/task/1 to the hub)."""

from __future__ import annotations

import argparse
import base64
import json
import sys
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
from p2pnode.executor.spec import load_task_spec, task_spec_from_dict

START_TIMEOUT = 120.0  # the hub checks the image and creates the container first
RESULTS_TIMEOUT = 3600.0


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
        metavar="DEAL [--image IMG | --file FILE] [--env N=V] [--workdir DIR] [--json] -- CMD",
    )
    start.set_defaults(func=cmd_start)
    logs = sub.add_parser("logs", help="the task's stdout and stderr, from the hub")
    add_config_options(logs)
    logs.add_argument("deal_id", type=int, metavar="DEAL")
    logs.add_argument("--follow", "-f", action="store_true", help="until the task ends")
    logs.add_argument("--tail", type=int, default=0, metavar="N", help="last N lines of each")
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


def spec_body(args: argparse.Namespace) -> dict[str, Any]:
    """The API body from --file or --image/-- CMD (checked here as the hub will)."""
    cmd = list(args.cmd or [])
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if args.file:
        if args.image or cmd or args.env or args.workdir:
            raise UserError("--file holds the whole task: no --image, --env, --workdir or CMD")
        return load_task_spec(Path(args.file)).to_dict()
    if not args.image:
        raise UserError("name the image (--image IMG -- CMD...) or a task file (--file)")
    env = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--env {item!r}: NAME=VALUE expected")
        env[name] = value
    data: dict[str, Any] = {"image": args.image, "command": cmd, "env": env}
    if args.workdir:
        data["working_dir"] = args.workdir
    return task_spec_from_dict(data).to_dict()


def api_body(spec: dict[str, Any]) -> dict[str, Any]:
    """The task file's shape as the API takes it: inputs keyed by path."""
    inputs = {
        f["path"]: {"content_b64": f["content_b64"], "mode": f["mode"]} for f in spec["inputs"]
    }
    return {**spec, "inputs": inputs}


def cmd_start(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    words = parse_start(list(args.words))
    body = api_body(spec_body(words))
    path = f"/tasks/{words.deal_id}"
    result = api_call(config, "POST", path, body=body, timeout=START_TIMEOUT)
    if words.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"task {result['task_id']} of deal {words.deal_id}: {result['answer']}")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    import httpx

    config = config_from_args(args)
    base, token = api_base(config)
    path = f"/tasks/{args.deal_id}/logs"
    params = {"follow": str(bool(args.follow)).lower(), "tail": args.tail}
    out = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
    try:
        with httpx.stream(
            "GET",
            base + path,
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(10.0, read=None if args.follow else 60.0),
        ) as resp:
            if resp.status_code >= 400:
                resp.read()
                check_response(resp, "GET", path, base, config)
            for line in resp.iter_lines():
                if not line:
                    continue
                record = json.loads(line)
                if record["stream"] == "error":
                    raise UserError(f"logs of deal {args.deal_id}: {record['error']}")
                if record["stream"] in out:
                    out[record["stream"]].write(base64.b64decode(record["data"]))
                    out[record["stream"]].flush()
    except httpx.HTTPError as exc:
        raise UserError(f"the node's API at {base}: {exc}") from None
    return 0


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
