"""NumPy-vectorized Monte-Carlo walk: the baseline the Numba kernel is benchmarked against.

All walks advance together, one array operation per step, sampling with the same alias tables
as the kernel. It is exact in distribution (tested against ``native.walk.expected_visits``) but
not stream-compatible with the kernel: it draws from NumPy's PCG64.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from native.walk import CsrGraph


def walk_hits_numpy(
    graph: CsrGraph, starts: ArrayLike, *, steps: int, sims: int, seed: int
) -> NDArray[np.int64]:
    """Hits per node after ``sims`` walks of up to ``steps`` steps from uniform starts."""
    start_arr = np.asarray(starts, dtype=np.int64)
    if start_arr.ndim != 1 or start_arr.size == 0:
        raise ValueError("starts must be a non-empty one-dimensional array")
    if start_arr.min() < 0 or start_arr.max() >= graph.n_nodes:
        raise ValueError(f"starts must lie in [0, {graph.n_nodes})")
    if steps < 0 or sims < 0:
        raise ValueError("steps and sims must be >= 0")
    rng = np.random.default_rng(seed)
    indptr = graph.indptr.astype(np.int64)
    degree_of = np.diff(indptr)
    cur = start_arr[rng.integers(0, start_arr.size, size=sims)]
    hits = np.zeros(graph.n_nodes, dtype=np.int64)
    for _ in range(steps):
        degree = degree_of[cur]
        alive = degree > 0
        if not alive.all():
            cur = cur[alive]
            degree = degree[alive]
        if cur.size == 0:
            break
        x = rng.random(cur.size) * degree
        j = np.minimum(x.astype(np.int64), degree - 1)
        edge = indptr[cur] + j
        aliased = (x - j) >= graph.alias_prob[edge]
        edge = np.where(aliased, graph.alias_index[edge], edge)
        cur = graph.indices[edge].astype(np.int64)
        hits += np.bincount(cur, minlength=graph.n_nodes)
    return hits
