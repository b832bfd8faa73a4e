"""PNG figures from a results dict (matplotlib, Agg backend: no display needed).

Plots read only the results dict, never live simulation objects, so a figure
can be redrawn from a results.json written earlier (or by a sweep worker).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def propagation_cdf(curves: Mapping[str, Sequence[Sequence[float]]], out: Path, title: str) -> Path:
    """Fraction of the expected deliveries made vs time since publish.

    `curves` maps a label to [delay_s, fraction] points (results' `cdf`).
    The fraction is of all deliveries that should have happened, so a curve
    that stays below 1.0 shows messages that never arrived.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for label, pts in curves.items():
        if pts:
            ax.step([p[0] * 1000.0 for p in pts], [p[1] for p in pts], where="post", label=label)
    ax.set_xlabel("time since publish (ms)")
    ax.set_ylabel("fraction of expected deliveries")
    ax.set_ylim(0.0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def duplicates_histogram(dups: Mapping[str, Any], d_mesh: int, out: Path, title: str) -> Path:
    """Nodes by duplicates received per delivered message (results' histogram)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    width = float(dups.get("bin_width", 0.5))
    counts = list(dups.get("histogram", []))
    ax.bar([i * width for i in range(len(counts))], counts, width=width, align="edge")
    ax.axvline(d_mesh, color="tab:red", linestyle="--", label=f"mesh degree D = {d_mesh}")
    mean = dups.get("mean")
    if isinstance(mean, float):
        ax.axvline(mean, color="tab:green", linestyle=":", label=f"mean = {mean:.2f}")
    ax.set_xlabel("duplicates per delivered message (per node)")
    ax.set_ylabel("nodes")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def delivery_under_attack(rows: Mapping[str, Mapping[str, Any]], out: Path, title: str) -> Path:
    """Honest delivery per variant (e.g. scoring on / off), and per message over time.

    `rows` maps a variant label to a dict with `delivery_ratio` (0..1) and
    `delivery_over_time`: [t, ratio, p90 delay or null] per message published
    at t. Left: overall delivery as bars. Middle: delivery of each message.
    Right: p90 delay of each fully delivered message, which shows an attack
    that slows delivery down without stopping it, and recovery as scores build.
    """
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13.0, 4.0), dpi=100)
    labels = list(rows)
    ratios = [float(rows[k]["delivery_ratio"]) * 100.0 for k in labels]
    colours = ["tab:green", "tab:red", "tab:blue", "tab:orange"]
    bars = ax1.bar(labels, ratios, color=colours[: len(labels)])
    for b, r in zip(bars, ratios, strict=True):
        ax1.annotate(f"{r:.2f}%", (b.get_x() + b.get_width() / 2, r), ha="center", va="bottom")
    ax1.set_ylim(0, 105)
    ax1.set_ylabel("honest deliveries / expected (%)")
    ax1.set_title(title)
    for k, colour in zip(labels, colours, strict=False):
        series = rows[k].get("delivery_over_time") or []
        if not series:
            continue
        ts = [p[0] for p in series]
        ax2.plot(ts, [p[1] * 100.0 for p in series], marker=".", color=colour, label=k)
        lat = [(p[0], p[2] * 1000.0) for p in series if len(p) > 2 and p[2] is not None]
        if lat:
            ax3.plot([x for x, _ in lat], [y for _, y in lat], marker=".", color=colour, label=k)
    ax2.set_xlabel("publish time (s)")
    ax2.set_ylabel("delivery of that message (%)")
    ax2.set_ylim(0, 105)
    ax2.grid(True, alpha=0.3)
    ax3.set_xlabel("publish time (s)")
    ax3.set_ylabel("p90 delay of that message (ms)")
    ax3.set_ylim(bottom=0)
    ax3.grid(True, alpha=0.3)
    for ax in (ax2, ax3):
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
