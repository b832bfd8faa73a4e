"""Who is connected to whom at the start of a run.

The graphs come from networkx and are turned into plain adjacency sets right
away: a networkx Graph costs several hundred bytes per edge, and at 10^5 nodes
with 20 connections each that alone would be gigabytes. Every generator is
seeded from the run's seed, so the same seed gives the same graph.

Kinds:
- `random_regular`: every node has exactly `degree` connections; the textbook
  model of a libp2p node keeping a target connection count.
- `scale_free`: Barabasi-Albert preferential attachment with `m = degree // 2`
  edges per new node (mean degree ~ `degree`), so a few hubs have many
  connections, as in networks grown from bootstrap seeds.
- `geographic`: nodes are placed around their region's centre and linked to
  their nearest neighbours (random geometric graph whose radius gives mean
  degree ~ `degree`), then components are joined, and each node adds
  `long_links` random long-range links (peers found through seeds and peer
  exchange are not local): links are mostly regional. Without long links a
  sparse region hangs on one or two bridge nodes whose meshes are full, and
  reaches the rest only by IHAVE gossip.
- `line`, `tree` (balanced, `branching` children): for analytic tests.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import networkx as nx

from gossip.errors import UserError
from simulations.latency import REGION_CENTRES

KINDS = ("random_regular", "scale_free", "geographic", "line", "tree")


@dataclass(frozen=True)
class TopologyParams:
    kind: str = "random_regular"
    degree: int = 20
    branching: int = 2
    region_spread: float = 0.05
    long_links: int = 2

    def validate(self, n: int) -> None:
        if self.kind not in KINDS:
            raise UserError(f"topology kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if n < 2:
            raise UserError(f"topology needs at least 2 nodes, got {n}")
        if self.kind in ("random_regular", "scale_free", "geographic"):
            if not 2 <= self.degree < n:
                raise UserError(
                    f"topology degree must be in [2, nodes-1={n - 1}], got {self.degree}"
                )
            if self.kind == "random_regular" and (n * self.degree) % 2:
                raise UserError(
                    f"topology random_regular needs nodes*degree even, got {n}*{self.degree}"
                )
        if self.kind == "tree" and self.branching < 1:
            raise UserError(f"topology branching must be >= 1, got {self.branching}")
        if not 0 <= self.long_links <= 100:
            raise UserError(f"topology long_links must be in [0, 100], got {self.long_links}")
        if not 0.0 < self.region_spread <= 1.0:
            raise UserError(f"topology region_spread must be in (0, 1], got {self.region_spread}")


def _shuffle(x: list[Any], rng: random.Random) -> None:
    """`rng.shuffle(x)`, the same draws (random.Random.shuffle over
    _randbelow_with_getrandbits, as CPython 3.11 writes them) with the two calls
    per element inlined: 2x10^6 stubs are shuffled at 10^5 nodes. The items are
    `Any`: compiled, an `int` item would be unboxed and boxed anew (a fresh
    object) on every swap."""
    getrandbits = rng.getrandbits
    for i in reversed(range(1, len(x))):
        n = i + 1
        k = n.bit_length()
        j = getrandbits(k)
        while j >= n:
            j = getrandbits(k)
        x[i], x[j] = x[j], x[i]


def random_regular(degree: int, n: int, seed: int) -> list[set[int]]:
    """The adjacency sets of `nx.random_regular_graph(degree, n, seed=seed)`, the
    same sets built in the same order, without the Graph.

    The pairing (Steger and Wormald's, as networkx draws it: the same shuffles of
    the same stub list, the same retries) is reproduced step for step, so the
    seed gives the graph it always gave; only the networkx Graph in between is
    skipped. At 10^5 nodes and degree 20 building and walking that Graph (10^6
    edges as dicts of dicts) took most of the world's build time.
    `test_topology_matches_networkx` holds the two to the same sets, in the
    same iteration order.

    Node numbers are handled as objects (`Any`), one int object per node from
    `ids`: compiled, an `int` is unboxed on every read and boxed into a new
    object on every store, which made ~10^7 short-lived ints at 10^5 nodes and
    left 2x10^6 copies of the node numbers in the sets; here every set holds
    the node's one object.
    """
    if (n * degree) % 2 or not 0 <= degree < n:
        raise UserError(f"no {degree}-regular graph on {n} nodes")
    rng = random.Random(seed)  # what networkx makes of an integer seed
    ids: list[Any] = list(range(n))

    def suitable(edges: set[tuple[Any, Any]], potential: dict[Any, int]) -> bool:
        if not potential:
            return True
        for s1 in potential:
            for s2 in potential:
                if s1 == s2:
                    break
                if s1 > s2:
                    s1, s2 = s2, s1  # rebinds s1 for the rest of the loop, as networkx does
                if (s1, s2) not in edges:
                    return True
        return False

    def attempt() -> set[tuple[Any, Any]] | None:
        edges: set[tuple[Any, Any]] = set()
        stubs: list[Any] = ids * degree
        while stubs:
            potential: dict[Any, int] = {}
            _shuffle(stubs, rng)
            it = iter(stubs)
            for s1, s2 in zip(it, it, strict=False):
                if s1 > s2:
                    s1, s2 = s2, s1
                if s1 != s2 and (s1, s2) not in edges:
                    edges.add((s1, s2))
                else:
                    potential[s1] = potential.get(s1, 0) + 1
                    potential[s2] = potential.get(s2, 0) + 1
            if not suitable(edges, potential):
                return None
            stubs = [node for node, k in potential.items() for _ in range(k)]
        return edges

    edges = attempt() if degree else set()
    while edges is None:
        edges = attempt()
    # Graph.add_edges_from then Graph.edges(), as _to_adjacency walked them: each
    # node's neighbours in the order the edge set names them, each edge once,
    # from its smaller end
    nbrs: list[list[Any]] = [[] for _ in range(n)]
    for a, b in edges:
        nbrs[a].append(b)
        nbrs[b].append(a)
    adj: list[set[Any]] = [set() for _ in range(n)]
    for a in ids:
        sa = adj[a]
        for b in nbrs[a]:
            if b > a:
                sa.add(b)
                adj[b].add(a)
    return adj


def _to_adjacency(g: nx.Graph, n: int) -> list[set[int]]:
    adj: list[set[int]] = [set() for _ in range(n)]
    for a, b in g.edges():
        if a != b:
            adj[a].add(b)
            adj[b].add(a)
    return adj


def _join_components(adj: list[set[int]], pos: list[tuple[float, float]]) -> None:
    """Link every smaller component to the nearest node of the largest one."""
    n = len(adj)
    seen = [-1] * n
    comps: list[list[int]] = []
    for s in range(n):
        if seen[s] >= 0:
            continue
        comp = [s]
        seen[s] = len(comps)
        stack = [s]
        while stack:
            u = stack.pop()
            for v in adj[u]:
                if seen[v] < 0:
                    seen[v] = len(comps)
                    comp.append(v)
                    stack.append(v)
        comps.append(comp)
    if len(comps) == 1:
        return
    comps.sort(key=lambda c: (-len(c), c[0]))
    giant = comps[0]
    step = max(1, len(giant) // 2000)  # sample the giant component to keep this cheap
    sample = giant[::step]
    for comp in comps[1:]:
        u = comp[0]
        ux, uy = pos[u]
        v = min(sample, key=lambda w: (pos[w][0] - ux) ** 2 + (pos[w][1] - uy) ** 2)
        adj[u].add(v)
        adj[v].add(u)


def positions(regions: list[int], spread: float, rng: random.Random) -> list[tuple[float, float]]:
    """A point near each node's region centre (Gaussian, clipped to the square)."""
    out: list[tuple[float, float]] = []
    for r in regions:
        cx, cy = REGION_CENTRES[r]
        x = min(1.0, max(0.0, rng.gauss(cx, spread)))
        y = min(1.0, max(0.0, rng.gauss(cy, spread)))
        out.append((x, y))
    return out


def build(
    params: TopologyParams, n: int, regions: list[int], rng: random.Random
) -> tuple[list[set[int]], list[tuple[float, float]]]:
    """Adjacency sets and node positions for `n` nodes."""
    params.validate(n)
    seed = rng.getrandbits(32)
    pos = positions(regions, params.region_spread, rng)
    if params.kind == "random_regular":
        return random_regular(params.degree, n, seed), pos
    if params.kind == "scale_free":
        g = nx.barabasi_albert_graph(n, max(1, params.degree // 2), seed=seed)
    elif params.kind == "geographic":
        # Nodes are clustered, so the uniform-square formula for the radius does
        # not hold: pick the radius as the distance quantile that gives the
        # asked mean degree, estimated from a sample of node pairs.
        radius = _radius_for_degree(pos, params.degree, rng)
        g = nx.random_geometric_graph(n, radius, pos=dict(enumerate(pos)), seed=seed)
        adj = _to_adjacency(g, n)
        _join_components(adj, pos)
        for a in range(n):  # a few random long-range links per node
            for _ in range(params.long_links):
                b = int(rng.random() * n)
                if b != a:
                    adj[a].add(b)
                    adj[b].add(a)
        return adj, pos
    elif params.kind == "line":
        g = nx.path_graph(n)
    else:
        g = nx.balanced_tree(params.branching, _tree_height(n, params.branching))
        g = g.subgraph(range(n)).copy()
    return _to_adjacency(g, n), pos


def _tree_height(n: int, branching: int) -> int:
    if branching == 1:
        return n - 1
    h, size, level = 0, 1, 1
    while size < n:
        level *= branching
        size += level
        h += 1
    return h


def _radius_for_degree(pos: list[tuple[float, float]], degree: int, rng: random.Random) -> float:
    n = len(pos)
    samples = sorted(
        math.dist(pos[int(rng.random() * n)], pos[int(rng.random() * n)]) for _ in range(20_000)
    )
    q = min(1.0, degree / (n - 1))
    return samples[min(len(samples) - 1, int(q * len(samples)))]
