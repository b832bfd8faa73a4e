"""The market and trust figures of the docs, from seeded runs: `sonm-p2p simulate figures`.

One market run (time to match, price spread) and one trust run per liar
fraction (convergence per poll round under trust polling, a plain majority
vote over the same answers and no polling; unpaid hours with and without
polling). `small` is the market scenario's defaults and the quick trust world
of docs/reputation.md (200 workers, 20 hubs, 12 days): a few minutes in all;
`full` is the trust scenario's defaults (1000 workers, 50 hubs, 20 days: about
six minutes of one core per liar fraction). figures.json holds every series drawn, so a
figure can be checked (and redrawn) without reading pixels; it depends on the
seed and sizes only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gossip.errors import UserError
from simulations import plots
from simulations import results as results_io
from simulations.scenarios.trust import series

LIARS = (0.0, 0.1, 0.2, 0.33)
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    # the market's defaults take seconds; the trust world of `benchmarks.trust_sim --quick`
    "small": {
        "market": {},
        "trust": {"nodes": 200, "hubs": 20, "days": 12.0, "arrival_days": 4.0},
    },
    "full": {"market": {}, "trust": {}},
}
FILES = (
    "market_time_to_match.png",
    "market_price_spread.png",
    "trust_convergence.png",
    "trust_unpaid_hours.png",
)


def parse_overrides(items: list[str]) -> dict[str, dict[str, str]]:
    """`market.KEY=VALUE` / `trust.KEY=VALUE` (CLI --set) into per-scenario overrides."""
    out: dict[str, dict[str, str]] = {"market": {}, "trust": {}}
    for item in items:
        key, sep, value = item.partition("=")
        scenario, dot, name = key.strip().partition(".")
        if not sep or not dot or scenario not in out or not name:
            raise UserError(
                f"figures --set expects market.KEY=VALUE or trust.KEY=VALUE, got {item!r}"
            )
        if name in ("seed", "liars", "polling"):
            raise UserError(f"figures --set: {key} is set by the figures themselves")
        out[scenario][name] = value.strip()
    return out


def liar_label(fraction: float) -> str:
    return f"liars {fraction * 100:.0f}%"


def make(
    out_dir: Path,
    *,
    size: str = "small",
    seed: int = 0,
    liars: tuple[float, ...] = LIARS,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    on_run: Callable[[str], None] | None = None,
) -> list[Path]:
    """Run the figures' scenarios; write figures.json and the PNGs in out_dir."""
    from simulations.runner import prepare, run_scenario

    if size not in SIZES:
        raise UserError(f"figures size must be one of {sorted(SIZES)}, got {size!r}")
    if not liars:
        raise UserError("figures need at least one liar fraction")
    ov = overrides or {}
    market_params = {**SIZES[size]["market"], **ov.get("market", {}), "seed": seed}
    trust_params = {**SIZES[size]["trust"], **ov.get("trust", {}), "seed": seed, "polling": "both"}
    # every parameter checked before the first run starts
    scenarios = [("market", prepare("market", market_params))]
    for f in liars:
        scenarios.append((liar_label(f), prepare("trust", {**trust_params, "liars": f})))

    data: dict[str, Any] = {"size": size, "seed": seed, "trust": {}}
    for label, scenario in scenarios:
        if on_run is not None:
            on_run(label)
        res = run_scenario(scenario).results
        if label == "market":
            data["market"] = {
                "params": res["params"],
                "deals": res["deals"],
                "match_rate": res["match_rate"],
                "time_to_match_s": res["time_to_match_s"],
                "time_to_match_cdf": res["time_to_match_cdf"],
                "price_spread": res["price_spread"],
                "price_spread_cdf": res["price_spread_cdf"],
                "spread_over_time": res["spread_over_time"],
            }
        else:
            data["trust"][label] = {
                "params": res["params"],
                "liars": res["liars"],
                "bad_hubs": res["bad_hubs"],
                **series(res),
            }

    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "figures.json"
    json_path.write_text(results_io.dumps(data), encoding="utf-8")
    # drawn from the file as written, so the PNGs can be redrawn from it byte for byte
    return [json_path, *draw(json.loads(json_path.read_text(encoding="utf-8")), out_dir)]


def draw(data: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """The PNGs from a figures.json dict (FILES, in that order)."""
    m = data["market"]
    rate = m["match_rate"]  # null when no BID ended
    mlabel = f"{m['deals']} deals, match rate " + ("n/a" if rate is None else f"{rate:.2f}")
    trust = data["trust"]
    first = next(iter(trust.values()))["params"]
    size = f"{first['nodes']} workers, {first['hubs']} hubs"
    return [
        plots.time_to_match({mlabel: m["time_to_match_cdf"]}, out_dir / FILES[0]),
        plots.price_spread(
            {mlabel: m["price_spread_cdf"]},
            {mlabel: m["spread_over_time"]},
            out_dir / FILES[1],
        ),
        plots.trust_convergence(trust, out_dir / FILES[2], f"trust convergence ({size})"),
        plots.unpaid_hours(trust, out_dir / FILES[3], f"unpaid hours at bad hubs ({size})"),
    ]
