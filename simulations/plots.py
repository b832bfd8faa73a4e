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


def _save(fig: Any, out: Path) -> Path:
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def time_to_match(curves: Mapping[str, Sequence[Sequence[float]]], out: Path) -> Path:
    """Share of the ended BIDs matched within a wait (market results' `time_to_match_cdf`).

    The share is of every BID that ended (matched or expired), so a curve that
    levels off below 1.0 shows the BIDs that never found a seller.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for label, pts in curves.items():
        if pts:
            # the first point is often at 0 s (matched on arrival): a log axis starts at 0.1 s
            xs = [max(p[0], 0.1) for p in pts]
            ax.step(xs, [p[1] for p in pts], where="post", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("time from BID to deal (s; matched on arrival drawn at 0.1 s)")
    ax.set_ylabel("share of ended BIDs matched")
    ax.set_ylim(0.0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.set_title("market: time to match")
    ax.legend(loc="lower right")
    return _save(fig, out)


def price_spread(
    cdfs: Mapping[str, Sequence[Sequence[float]]],
    over_time: Mapping[str, Sequence[Sequence[float]]],
    out: Path,
) -> Path:
    """How far below the BID's limit deals close: (bid - ask) / bid.

    Left: the spread's distribution over all deals (`price_spread_cdf`). Right:
    the median spread of each hour's deals (`spread_over_time`), which narrows
    as suppliers reprice toward what consumers pay.
    """
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11.0, 4.0), dpi=100)
    for label, pts in cdfs.items():
        if pts:
            ax1.step([p[0] * 100.0 for p in pts], [p[1] for p in pts], where="post", label=label)
    ax1.set_xlabel("spread: (BID limit - ASK price) / BID limit (%)")
    ax1.set_ylabel("share of deals")
    ax1.set_ylim(0.0, 1.02)
    ax1.grid(True, alpha=0.3)
    ax1.set_title("market: price spread")
    for label, pts in over_time.items():
        if pts:
            ax2.plot([p[0] for p in pts], [p[1] * 100.0 for p in pts], marker=".", label=label)
    ax2.set_xlabel("hour of the run")
    ax2.set_ylabel("median spread of that hour's deals (%)")
    ax2.grid(True, alpha=0.3)
    ax2.set_title("market: spread over time")
    for ax in (ax1, ax2):
        if ax.lines:
            ax.legend()
    return _save(fig, out)


COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def trust_convergence(runs: Mapping[str, Mapping[str, Any]], out: Path, title: str) -> Path:
    """Right statuses per poll round, one colour per run (e.g. per liar fraction).

    Each run maps `polling`, `majority` and `no_polling` to [days, fraction]
    points (simulations.scenarios.trust.series): the fraction of (honest
    worker, hub) pairs whose status is right (good hub CHECKED/SAFE, bad hub
    SUSPECTED/FAKE), under trust polling, under a plain majority vote over the
    same answers, and with own evidence only.
    """
    styles = (
        ("polling", "-", "trust polling"),
        ("majority", "--", "plain majority"),
        ("no_polling", ":", "no polling"),
    )
    fig, ax = plt.subplots(figsize=(8.0, 4.8), dpi=100)
    for (label, run), colour in zip(runs.items(), COLOURS * 4, strict=False):
        for key, ls, what in styles:
            pts = run.get(key) or []
            if pts:
                ax.plot(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    ls,
                    color=colour,
                    label=f"{label}: {what}",
                )
    ax.set_xlabel("days")
    ax.set_ylabel("(honest worker, hub) pairs with the right status")
    ax.set_ylim(0.0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.set_title(title)
    if ax.lines:
        ax.legend(fontsize=7, loc="lower right", ncol=2)
    return _save(fig, out)


def unpaid_hours(runs: Mapping[str, Mapping[str, Any]], out: Path, title: str) -> Path:
    """Hours honest workers worked at bad hubs that no payment covered, over time.

    A short-paying hub's payday lowers the count (part of the hours are paid);
    a hub that stopped paying only adds to it.

    Each run maps `unpaid_polling` and `unpaid_no_polling` to [days, unpaid
    hours] points (simulations.scenarios.trust.series).
    """
    fig, ax = plt.subplots(figsize=(8.0, 4.8), dpi=100)
    for (label, run), colour in zip(runs.items(), COLOURS * 4, strict=False):
        for key, ls, what in (
            ("unpaid_polling", "-", "trust polling"),
            ("unpaid_no_polling", ":", "no polling"),
        ):
            pts = run.get(key) or []
            if pts:
                ax.plot(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    ls,
                    color=colour,
                    label=f"{label}: {what}",
                )
    ax.set_xlabel("days")
    ax.set_ylabel("hours at bad hubs no payment covered yet")
    ax.set_ylim(bottom=0.0)
    ax.grid(True, alpha=0.3)
    ax.set_title(title)
    if ax.lines:
        ax.legend(fontsize=7, loc="upper left", ncol=2)
    return _save(fig, out)
