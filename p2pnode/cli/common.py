"""What every node-facing subcommand shares: which config and data dir, and how to
ask the running node's local API."""

from __future__ import annotations

import argparse
from typing import Any

from p2pnode.config import NodeConfig, load_config
from p2pnode.errors import UserError


def add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML config file")
    parser.add_argument("--data-dir", metavar="DIR", help="node data dir (node.data_dir)")


def config_from_args(args: argparse.Namespace, **extra: Any) -> NodeConfig:
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["node.data_dir"] = args.data_dir
    overrides.update({k: v for k, v in extra.items() if v is not None})
    return load_config(getattr(args, "config", None), overrides=overrides)


def api_call(
    config: NodeConfig,
    method: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    body: dict[str, Any] | None = None,
    timeout: float = 10.0,
) -> Any:
    """One request to the local node's API; any failure is one UserError line with the
    API's own explanation (which field, which bound)."""
    import httpx

    base, token = api_base(config)
    try:
        resp = httpx.request(
            method,
            base + path,
            params={k: v for k, v in (params or {}).items() if v is not None},
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )
    except httpx.HTTPError:
        raise UserError(
            f"the node's API at {base} is not answering: is the node running?"
        ) from None
    check_response(resp, method, path, base, config)
    return resp.json()


def api_base(config: NodeConfig) -> tuple[str, str]:
    """The running node's API URL and its token."""
    from p2pnode.api.auth import read_token
    from p2pnode.ready import read_ready

    data_dir = config.data_path
    token = read_token(data_dir)
    if token is None:
        raise UserError(f"no API token in {data_dir}: has the node in this data dir run yet?")
    ready = read_ready(data_dir)
    host = config.api.host
    default = f"http://{'[' + host + ']' if ':' in host else host}:{config.api.port}"
    base = ready["api_url"] if ready and ready.get("api_url") else default
    return base, token


def check_response(resp: Any, method: str, path: str, base: str, config: NodeConfig) -> None:
    """A UserError with the API's explanation for any 4xx/5xx (the body must be read)."""
    if resp.status_code == 401:
        raise UserError(f"the API at {base} refused the token in {config.data_path}")
    if resp.status_code >= 400:
        try:
            detail = resp.json().get("detail")
        except ValueError:
            detail = None
        if isinstance(detail, list):  # request validation: name the fields
            detail = "; ".join(
                f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}"
                for d in detail
                if isinstance(d, dict)
            )
        raise UserError(f"{method} {path}: {detail or resp.reason_phrase} ({resp.status_code})")
