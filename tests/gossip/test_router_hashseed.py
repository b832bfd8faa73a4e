"""Same seed, same run, in any process: nothing the router does may depend on the
hash seed of the interpreter (PYTHONHASHSEED randomises the hash of bytes and str).

The same small VirtualNet scenario runs in two subprocesses with different hash
seeds; the meshes, the order and times of deliveries and the counters must match.
This file is also the script the subprocesses run.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gossip.events import Delivered, Event
from gossip.params import GossipSubParams
from gossip.score_params import PeerScoreParams, TopicScoreParams
from gossip.testing import VirtualNet
from gossip.validation import ValidationResult

REPO = Path(__file__).resolve().parents[2]
TOPICS = ("t", "u")


def _accept(topic: str, data: bytes, peer: bytes) -> ValidationResult:
    return ValidationResult.ACCEPT


def _variant(flood: bool, scoring: bool) -> dict[str, Any]:
    """24 nodes, random degree-5 graph, two topics, publishes from several nodes,
    a few departures: enough to exercise mesh upkeep (graft, prune, survivors),
    gossip, fanout (without flood publishing) and scoring."""
    params = GossipSubParams(flood_publish=flood, D=4, D_lo=3, D_hi=6, D_score=2, D_out=1)
    kw: dict[str, Any] = {"params": params, "validator": _accept}
    if scoring:
        kw["score_params"] = PeerScoreParams(topics={t: TopicScoreParams() for t in TOPICS})
    net = VirtualNet(latency=0.003, encode=not scoring)
    times: dict[str, list[tuple[str, float]]] = {}

    def on_event(name: bytes, ev: Event) -> None:
        if isinstance(ev, Delivered):
            times.setdefault(name.decode(), []).append((ev.msg_id.hex(), round(net.now, 9)))

    net.on_event = on_event
    names = [b"n%02d" % i for i in range(24)]
    for i, name in enumerate(names):
        net.new(name, random.Random(1000 + i), **kw)
    rng = random.Random(7)
    for a in names:
        for b in rng.sample(names, 5):
            if a != b and (a, b) not in net.links and (b, a) not in net.links:
                net.connect(a, b)
    for i, name in enumerate(names):
        net.routers[name].subscribe(TOPICS[0], net.now)
        if i % 3:
            net.routers[name].subscribe(TOPICS[1], net.now)
    net.run_until(3.0)
    for k in range(12):
        src = names[rng.randrange(len(names))]
        net.routers[src].publish(TOPICS[k % 2], b"m%d" % k, net.now)
        net.run_until(net.now + 0.05 * (1 + k % 3))
        if k == 5:
            for gone in names[:3]:
                for other in names:
                    if (gone, other) in net.links:
                        net.disconnect(gone, other)
    net.run_until(net.now + 5.0)
    return {
        # lists, in the router's own order: a stricter check than sets
        "mesh": {
            n.decode(): {t: [p.decode() for p in r._mesh.get(t, {})] for t in TOPICS}
            for n, r in net.routers.items()
        },
        "fanout": {
            n.decode(): {t: [p.decode() for p in (r._fanout or {}).get(t, {})] for t in TOPICS}
            for n, r in net.routers.items()
        },
        "deliveries": times,
        "metrics": {n.decode(): asdict(r.metrics) for n, r in net.routers.items()},
    }


def outcome() -> dict[str, Any]:
    return {
        "flood": _variant(flood=True, scoring=False),
        "mesh_publish_scored": _variant(flood=False, scoring=True),
    }


def _run_with_hash_seed(seed: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, __file__],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_outcomes_do_not_depend_on_the_hash_seed() -> None:
    a = _run_with_hash_seed("1")
    b = _run_with_hash_seed("2")
    for variant in a.values():  # the scenario did something worth comparing
        assert sum(len(v) for v in variant["deliveries"].values()) > 100
        assert any(m["graft_sent"] and m["prune_sent"] for m in variant["metrics"].values())
    assert a["mesh_publish_scored"]["fanout"] != {}
    for key in a:
        for part in ("mesh", "fanout", "deliveries", "metrics"):
            assert a[key][part] == b[key][part], f"{key}: {part} differ across hash seeds"


if __name__ == "__main__":
    print(json.dumps(outcome(), sort_keys=True))
