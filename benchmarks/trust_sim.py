"""Trust polling under attack, in the simulator: the figures of docs/reputation.md.

Runs the `trust` scenario (simulations/scenarios/trust.py) for 0, 10, 20 and 33 %
of the workers colluding to lie, and once with 1000 sybil liars and no
colluding workers, as a sweep on Dask (LocalCluster, one run per task; or
--scheduler ADDRESS). Every run has trust polling on and off side by side on the
same events, and scores a plain majority vote over the very answers the
polling run received. Printed per run:

- right: fraction of (honest worker, hub) pairs whose status is right at the
  end (good hub CHECKED/SAFE, bad hub SUSPECTED/FAKE; undecided counts wrong);
  beside it the same for the plain majority vote;
- false +: fraction of (honest worker, good hub) pairs marked SUSPECTED/FAKE;
- rounds: poll rounds until the right fraction stays within 1 point of its end value;
- unpaid h: hours honest workers worked for bad hubs that no payment covered,
  with polling and without; the ratio divides the no-polling hours by the
  polling hours (how many times fewer unpaid hours polling leaves);
- work done: hours honest workers worked in all, their joins, and their joins of
  bad hubs, with polling and without (polling must not buy its unpaid hours by
  keeping workers idle);
- sybil run: "verdicts changed" counts (worker, hub) statuses that differ from
  the 0 % run with the same seed; "max weight" is the largest weight any honest
  node gave any adversary.

    python -m benchmarks.trust_sim              # full size: 1000 workers, 50 hubs, 20 days
    python -m benchmarks.trust_sim --quick      # 200 workers, 20 hubs, 12 days (about a minute)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

CONFIGS: list[tuple[str, dict[str, Any]]] = [
    ("liars 0%", {"liars": 0.0}),
    ("liars 10%", {"liars": 0.1}),
    ("liars 20%", {"liars": 0.2}),
    ("liars 33%", {"liars": 0.33}),
    ("sybils 1000", {"liars": 0.0, "sybils": 1000}),
]
QUICK = {"nodes": 200, "hubs": 20, "days": 12.0, "arrival_days": 4.0}


def run_all(base: dict[str, Any], workers: int, scheduler: str | None) -> list[dict[str, Any]]:
    from distributed import Client, LocalCluster

    from simulations.sweep import run_one

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            host="127.0.0.1",
        )
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        futures = [
            client.submit(run_one, "trust", {**base, **ov}, key=f"trust-{i}", pure=False)
            for i, (_, ov) in enumerate(CONFIGS)
        ]
        return [f.result() for f in futures]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def changed_verdicts(a: dict[str, Any], b: dict[str, Any]) -> int:
    """(worker, hub) final statuses that differ between two runs of the same seed."""
    sa = dict(zip(a["arrived_ids"], a["final_statuses"], strict=True))
    sb = dict(zip(b["arrived_ids"], b["final_statuses"], strict=True))
    return sum(
        1 for w in sa.keys() & sb.keys() for x, y in zip(sa[w], sb[w], strict=True) if x != y
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a small world, about a minute")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2, help="Dask worker processes")
    ap.add_argument("--scheduler", help="an existing Dask scheduler instead of a LocalCluster")
    ap.add_argument("--days", type=float, help="virtual days (the horizon); default per size")
    ap.add_argument("--json", type=Path, help="also write every run's results here")
    args = ap.parse_args()
    base: dict[str, Any] = {"seed": args.seed, **(QUICK if args.quick else {})}
    if args.days is not None:
        base["days"] = args.days
    t0 = time.perf_counter()
    outs = run_all(base, args.workers, args.scheduler)
    wall = time.perf_counter() - t0
    results = [o["results"] for o in outs]
    p = results[0]["params"]
    print(
        f"trust polling: {p['nodes']} workers, {p['hubs']} hubs ({results[0]['bad_hubs']} bad: "
        f"half stop paying, half pay {p['short_pay']:.0%}), {p['days']:g} days, "
        f"a poll round every {p['round_h']:g} h, seed {p['seed']}"
    )
    head = (
        f"{'run':12s} {'right':>7s} {'majority':>8s} {'false +':>8s} {'maj. f+':>8s} "
        f"{'rounds':>6s} {'unpaid h':>9s} {'no poll':>9s} {'no poll / poll':>14s}"
    )
    print(head)
    print("-" * len(head))
    for (label, _), r in zip(CONFIGS, results, strict=True):
        on, off = r["polling"]["on"], r["polling"]["off"]
        print(
            f"{label:12s} {on['right']:7.2%} {on['majority']['right']:8.2%} "
            f"{on['false_positive']:8.2%} {on['majority']['false_positive']:8.2%} "
            f"{on['rounds_to_converge']:6d} {on['unpaid_hours_bad_hubs']:9.0f} "
            f"{off['unpaid_hours_bad_hubs']:9.0f} {r['unpaid_hours_off_over_on']:13.1f}x"
        )
    print("\nwork done by honest workers (poll / no poll): hours worked, joins, joins of bad hubs")
    for (label, _), r in zip(CONFIGS, results, strict=True):
        on, off = r["polling"]["on"], r["polling"]["off"]
        print(
            f"{label:12s} {on['hours_worked']:9.0f} / {off['hours_worked']:9.0f} h, "
            f"{on['joins']:5d} / {off['joins']:5d}, {on['joins_of_bad_hubs']:4d} / "
            f"{off['joins_of_bad_hubs']:4d}"
        )
    sybil, clean = results[4]["polling"]["on"], results[0]["polling"]["on"]
    print(
        f"\nsybil run vs the 0 % run (same seed): verdicts changed "
        f"{changed_verdicts(sybil, clean)} of {len(clean['final_statuses']) * p['hubs']}; "
        f"max weight any honest node gave an adversary {sybil['adversary_weight_max']:.3g}"
    )
    for (label, _), r in zip(CONFIGS, results, strict=True):
        on = r["polling"]["on"]
        it = on["eigentrust_iterations"]
        print(
            f"{label:12s} liars caught {on['liars_caught']}, adversaries' share of global "
            f"trust {on['adversary_global_trust']:.2e}, EigenTrust iterations: first "
            f"{it['first']}, then {it['mean_after_first']:.1f} on average (warm start)"
        )
    print(f"\nwall {wall:.0f} s for {len(CONFIGS)} runs on {args.workers} Dask workers")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
