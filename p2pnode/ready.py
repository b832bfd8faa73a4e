"""`<data_dir>/ready.json`: written by a daemon once everything is bound, removed on
stop. Scripts, tests and the CLI read it for the actual ports (0 in config means the
OS chose). Kept apart from the daemon so readers do not import the network stack."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

READY_FILE = "ready.json"


def write_ready(data_dir: Path, info: dict[str, Any]) -> None:
    path = data_dir / READY_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, path)


def read_ready(data_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((data_dir / READY_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
