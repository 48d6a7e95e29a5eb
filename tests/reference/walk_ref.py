"""Plain-Python port of the original speculation simulator (the second test oracle).

The original (``flows.simulate.ts``) builds ``from -> [(to, p)]`` in edge order, starts every walk
at a uniformly chosen start path, takes up to ``steps`` steps picking the first edge whose running
sum of ``p`` reaches a uniform draw (the last edge when rounding leaves the sum short), stops at a
dead end and counts every node a step reaches. This port keeps that algorithm line for line; the
only addition is where the uniform draws come from:

- ``python_streams(seed)``: one ``random.Random`` shared by all walks (the original's
  ``Math.random``);
- ``splitmix_streams(seed)``: the per-walk SplitMix64 streams of ``native.walk``, so that the
  port and the kernel's cumulative sampler must agree hit for hit.

``expected_visits_ref`` is the textbook dynamic programme for the exact expected hits, written
over dicts, independent of the CSR code it checks.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence

Edge = tuple[str, str, float]
Uniform = Callable[[], float]
StreamFactory = Callable[[int], Uniform]

_MASK = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15


def _mix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def splitmix_streams(seed: int) -> StreamFactory:
    """Per-walk uniform streams identical to the kernel's."""

    def stream(walk: int) -> Uniform:
        state = _mix64((seed + (walk + 1) * _GAMMA) & _MASK)

        def draw() -> float:
            nonlocal state
            state = (state + _GAMMA) & _MASK
            return (_mix64(state) >> 11) * (1.0 / 9007199254740992.0)

        return draw

    return stream


def python_streams(seed: int) -> StreamFactory:
    """One shared ``random.Random`` for every walk, as ``Math.random`` in the original."""
    rng = random.Random(seed)
    return lambda _walk: rng.random


def normalize(counts: Iterable[tuple[str, str, int]]) -> list[Edge]:
    """``(from, to, count)`` -> ``(from, to, p)`` with ``p = count / out-total of from``."""
    rows = list(counts)
    totals: dict[str, int] = {}
    for src, _dst, c in rows:
        totals[src] = totals.get(src, 0) + c
    return [(src, dst, c / totals[src]) for src, dst, c in rows]


Adjacency = dict[str, list[tuple[str, float]]]


def build_adjacency(edges: Sequence[Edge]) -> Adjacency:
    """``from -> [(to, p)]`` in edge order, as the original builds it from the query result."""
    adj: Adjacency = {}
    for src, dst, p in edges:
        adj.setdefault(src, []).append((dst, p))
    return adj


def simulate(
    edges: Sequence[Edge],
    starts: Sequence[str],
    steps: int = 3,
    sims: int = 5000,
    streams: StreamFactory | None = None,
    start_weights: Sequence[float] | None = None,
) -> dict[str, int]:
    """Hits per path, exactly as the original algorithm counts them."""
    return walk(build_adjacency(edges), starts, steps, sims, streams, start_weights)


def walk(
    adj: Adjacency,
    starts: Sequence[str],
    steps: int = 3,
    sims: int = 5000,
    streams: StreamFactory | None = None,
    start_weights: Sequence[float] | None = None,
) -> dict[str, int]:
    """The walking part of ``simulate`` over a ready adjacency."""
    streams = streams or python_streams(0)
    start_cum: list[float] = []
    if start_weights is not None:
        total = sum(start_weights)
        acc = 0.0
        for w in start_weights:
            acc += w / total
            start_cum.append(acc)
    hits: dict[str, int] = {}

    def pick(arr: list[tuple[str, float]], r: float) -> str:
        acc = 0.0
        for to, p in arr:
            acc += p
            if r <= acc:
                return to
        return arr[-1][0]

    for s in range(sims):
        rand = streams(s)
        r = rand()
        if start_cum:
            k = next((i for i, c in enumerate(start_cum) if r <= c), len(start_cum) - 1)
        else:
            k = min(int(r * len(starts)), len(starts) - 1)
        cur = starts[k]
        for _ in range(steps):
            opts = adj.get(cur)
            if not opts:
                break
            cur = pick(opts, rand())
            hits[cur] = hits.get(cur, 0) + 1
    return hits


def rank(hits: dict[str, int], sims: int, top: int = 8) -> list[tuple[str, float]]:
    """The original ranking: by hits, descending, ``score = hits / sims`` (ties by path here)."""
    ordered = sorted(hits.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(path, n / sims) for path, n in ordered[:top]]


def expected_visits_ref(
    edges: Sequence[Edge],
    starts: Sequence[str],
    steps: int,
    start_weights: Sequence[float] | None = None,
) -> dict[str, float]:
    """Exact expected hits per walk: propagate the walker's distribution ``steps`` times."""
    adj = build_adjacency(edges)
    weights = list(start_weights) if start_weights is not None else [1.0] * len(starts)
    total_w = sum(weights)
    dist: dict[str, float] = {}
    for path, w in zip(starts, weights, strict=True):
        dist[path] = dist.get(path, 0.0) + w / total_w
    expected: dict[str, float] = {}
    for _ in range(steps):
        nxt: dict[str, float] = {}
        for node, mass in dist.items():
            for dst, p in adj.get(node, []):
                nxt[dst] = nxt.get(dst, 0.0) + mass * p
        for node, mass in nxt.items():
            expected[node] = expected.get(node, 0.0) + mass
        dist = nxt
    return expected
