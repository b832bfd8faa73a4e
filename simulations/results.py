"""results.json: the same run gives the same bytes.

`json.dumps` with `sort_keys` fixes the order of keys; floats are written with
9 significant digits (enough for microseconds over a day of virtual time) so
that the text does not depend on how a float was reached, only on its value to
that precision; NaN and infinities, which JSON cannot carry, become null.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SIG_DIGITS = 9


def normalise(value: Any) -> Any:
    """A JSON-ready copy with rounded floats, lists for tuples, str keys."""
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        rounded = float(f"{value:.{SIG_DIGITS}g}")
        return 0.0 if rounded == 0.0 else rounded
    if isinstance(value, Mapping):
        return {str(k): normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    raise TypeError(f"results cannot hold a {type(value).__name__}: {value!r}")


def dumps(results: Mapping[str, Any]) -> str:
    return json.dumps(normalise(results), sort_keys=True, indent=2, allow_nan=False) + "\n"


def write(results: Mapping[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "results.json"
    path.write_text(dumps(results), encoding="utf-8")
    return path


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (nan when empty)."""
    if not sorted_values:
        return math.nan
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]
