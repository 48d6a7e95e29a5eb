"""Random walks over a page-transition graph: Monte-Carlo estimate and exact expected visits.

The graph is a CSR adjacency (``indptr``/``indices`` as int32) whose rows carry, per edge, the
transition probability, the in-row cumulative probability and a Vose alias table; the alias
table is also laid out as one 12-byte ``(coin threshold, node, alias node)`` row per edge so
that a step reads a single table row, without branching and without floating point. A walk
starts at a node drawn from the start list (uniformly, or by weight), takes up to ``steps`` steps,
stopping at a dead end; every node reached by a step scores one hit (the start is not counted,
as in the original design).

Parallelism and randomness: the walks are split into one chunk per thread, each counting into
its own row; every walk owns a SplitMix64 stream keyed by ``(seed, walk index)``, so the hits
for a seed are the same whatever the number of threads or the way walks are split between them.
The stream is simple enough to replay in plain Python, which is how the reference
implementation in ``tests/reference/walk_ref.py`` reproduces the cumulative sampler hit for hit.

``expected_visits`` is the exact counterpart: the expected number of hits per walk is
``sum_{k=1..steps} (P^T)^k s`` with ``s`` the start distribution, i.e. ``steps`` sparse
matrix-vector products. The Monte-Carlo score ``hits / sims`` converges to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from native.numba_config import NJIT, NJIT_PARALLEL

import numba  # isort: skip  (numba_config must set NUMBA_CACHE_DIR before numba loads)
from numba import prange  # isort: skip

Sampler = Literal["alias", "cumulative"]
_F = TypeVar("_F", bound=Callable[..., Any])


def _jit(inline: bool = False, **options: Any) -> Callable[[_F], _F]:
    """``numba.njit`` with the given flags, typed so that mypy keeps the kernels' signatures."""
    if inline:
        options = {**options, "inline": "always"}
    return cast(Callable[[_F], _F], numba.njit(**options))


_SAMPLERS: Final[dict[str, int]] = {"alias": 0, "cumulative": 1}

#: Upper bounds that keep the int32 CSR (walk tables: edges + nodes + 1 rows) and the int64
#: counters far from overflow.
MAX_NODES: Final = 2**30 - 1
MAX_EDGES: Final = 2**30 - 1
MAX_STEPS: Final = 10_000
MAX_SIMS: Final = 2**40

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_S32 = np.uint64(32)
_ONE = np.uint64(1)
_LOW32 = np.uint64(0xFFFFFFFF)
_INV_2_53 = 1.0 / 9007199254740992.0
_TWO_32 = 4294967296.0


# --------------------------------------------------------------------------------------------
# private kernels
# --------------------------------------------------------------------------------------------


@_jit(inline=True, **NJIT)
def _mix64(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@_jit(inline=True, **NJIT)
def _stream_start(seed: np.uint64, walk: int) -> np.uint64:
    return _mix64(seed + np.uint64(walk + 1) * _GAMMA)


@_jit(inline=True, **NJIT)
def _next_uniform(state: np.uint64) -> tuple[np.uint64, float]:
    state = state + _GAMMA
    return state, float(np.int64(_mix64(state) >> _S11)) * _INV_2_53


@_jit(inline=True, **NJIT)
def _first_at_least(cum: NDArray[np.float64], lo: int, hi: int, r: float) -> int:
    # First index in [lo, hi) with cum[index] >= r; the last one when rounding left the row's
    # total just under r (the original design's fallback).
    last = hi - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        if cum[mid] >= r:
            hi = mid
        else:
            lo = mid + 1
    return lo if lo <= last else last


#: Walks advanced in lockstep per thread: their loads are independent, so the CPU overlaps the
#: cache misses of one walk with the arithmetic of the others.
_BLOCK = 64


@_jit(inline=True, **NJIT)
def _pick_start(starts: NDArray[np.int32], start_cum: NDArray[np.float64], r: float) -> int:
    n_starts = starts.shape[0]
    if start_cum.shape[0] > 0:
        return int(starts[_first_at_least(start_cum, 0, n_starts, r)])
    k = int(r * n_starts)
    return int(starts[k if k < n_starts else n_starts - 1])


@_jit(**NJIT_PARALLEL)
def _walk_hits(
    indptr: NDArray[np.int32],
    indices: NDArray[np.int32],
    cum: NDArray[np.float64],
    walk_indptr: NDArray[np.int32],
    walk_table: NDArray[np.uint32],
    starts: NDArray[np.int32],
    start_cum: NDArray[np.float64],
    steps: int,
    sims: int,
    seed: np.uint64,
    sampler: int,
    n_chunks: int,
) -> NDArray[np.int64]:
    n = indptr.shape[0] - 1
    # One counter row per chunk (the chunks run on different threads); column n counts the
    # absorbing exit node of the alias tables and is dropped.
    partial = np.zeros((n_chunks, n + 1), dtype=np.int64)
    for c in prange(n_chunks):
        row = partial[c]
        first = c * sims // n_chunks
        stop = (c + 1) * sims // n_chunks
        if sampler == 0:
            state = np.empty(_BLOCK, dtype=np.uint64)
            # Unsigned node and edge indices: Numba then skips the negative-index wraparound
            # test on every load (about a fifth of a step's time).
            cur = np.empty(_BLOCK, dtype=np.uint64)
            for block in range(first, stop, _BLOCK):
                size = min(_BLOCK, stop - block)
                for k in range(size):
                    s, r = _next_uniform(_stream_start(seed, block + k))
                    state[k] = s
                    cur[k] = np.uint64(_pick_start(starts, start_cum, r))
                for _ in range(steps):
                    # Branch-free step: a dead end leads to the exit node, which loops on
                    # itself, so a finished walk needs no test; the draws it still consumes
                    # come after its last hit and change nothing. Integer-only draw: the high
                    # 32 bits pick the column (multiply-shift), the low 32 bits toss the coin.
                    for k in range(np.uint64(size)):
                        u = cur[k]
                        lo = np.uint64(walk_indptr[u])
                        degree = np.uint64(walk_indptr[u + _ONE]) - lo
                        s = state[k] + _GAMMA
                        state[k] = s
                        z = _mix64(s)
                        e = lo + (((z >> _S32) * degree) >> _S32)
                        coin = np.uint32(z & _LOW32)
                        v = np.uint64(
                            walk_table[e, 1] if coin < walk_table[e, 0] else walk_table[e, 2]
                        )
                        cur[k] = v
                        row[v] += 1
        else:
            for w in range(first, stop):
                state1, r = _next_uniform(_stream_start(seed, w))
                node = _pick_start(starts, start_cum, r)
                for _ in range(steps):
                    lo = indptr[node]
                    hi = indptr[node + 1]
                    if lo == hi:
                        break
                    state1, r = _next_uniform(state1)
                    node = indices[_first_at_least(cum, lo, hi, r)]
                    row[node] += 1
    hits = np.zeros(n, dtype=np.int64)
    for c in range(n_chunks):
        hits += partial[c, :n]
    return hits


@_jit(**NJIT)
def _expected_visits(
    indptr: NDArray[np.int32],
    indices: NDArray[np.int32],
    prob: NDArray[np.float64],
    start_dist: NDArray[np.float64],
    steps: int,
) -> NDArray[np.float64]:
    n = indptr.shape[0] - 1
    total = np.zeros(n, dtype=np.float64)
    x = start_dist.copy()
    y = np.empty(n, dtype=np.float64)
    for _ in range(steps):
        y[:] = 0.0
        # y = P^T x, pushed row by row: mass at a dead end simply leaves the walk.
        for u in range(n):
            mass = x[u]
            if mass != 0.0:
                for e in range(indptr[u], indptr[u + 1]):
                    y[indices[e]] += mass * prob[e]
        total += y
        x, y = y, x
    return total


@_jit(**NJIT)
def _row_tables(
    indptr: NDArray[np.int32],
    prob: NDArray[np.float64],
    cum: NDArray[np.float64],
    alias_prob: NDArray[np.float64],
    alias_index: NDArray[np.int32],
) -> None:
    n = indptr.shape[0] - 1
    small = np.empty(prob.shape[0], dtype=np.int32)
    large = np.empty(prob.shape[0], dtype=np.int32)
    scaled = np.empty(prob.shape[0], dtype=np.float64)
    for u in range(n):
        lo = indptr[u]
        hi = indptr[u + 1]
        degree = hi - lo
        acc = 0.0
        for e in range(lo, hi):
            acc += prob[e]
            cum[e] = acc
        # Vose's alias method, per row; leftovers of rounding get probability 1 (themselves).
        n_small = 0
        n_large = 0
        for e in range(lo, hi):
            scaled[e] = prob[e] * degree
            alias_index[e] = e
            if scaled[e] < 1.0:
                small[n_small] = e
                n_small += 1
            else:
                large[n_large] = e
                n_large += 1
        while n_small > 0 and n_large > 0:
            n_small -= 1
            s = small[n_small]
            g = large[n_large - 1]
            alias_prob[s] = scaled[s]
            alias_index[s] = g
            scaled[g] = (scaled[g] + scaled[s]) - 1.0
            if scaled[g] < 1.0:
                n_large -= 1
                small[n_small] = g
                n_small += 1
        for i in range(n_large):
            alias_prob[large[i]] = 1.0
        for i in range(n_small):
            alias_prob[small[i]] = 1.0


@_jit(**NJIT)
def _walk_tables(
    indptr: NDArray[np.int32],
    indices: NDArray[np.int32],
    alias_prob: NDArray[np.float64],
    alias_index: NDArray[np.int32],
) -> tuple[NDArray[np.int32], NDArray[np.uint32]]:
    # 12-byte rows of (coin threshold in units of 2**-32, node, alias node), so that one step
    # reads one table row. Where the alias probability is 1 the alias is the node itself, so
    # the threshold's cap at 2**32 - 1 changes nothing. A dead end gets a single edge to the
    # exit node n, and n a single edge to itself.
    n = indptr.shape[0] - 1
    walk_indptr = np.empty(n + 2, dtype=np.int32)
    total = 0
    for u in range(n):
        walk_indptr[u] = total
        total += max(indptr[u + 1] - indptr[u], 1)
    walk_indptr[n] = total
    walk_indptr[n + 1] = total + 1
    table = np.empty((total + 1, 3), dtype=np.uint32)
    for u in range(n + 1):
        out = walk_indptr[u]
        if u == n or indptr[u] == indptr[u + 1]:
            table[out, 0] = np.uint32(0xFFFFFFFF)
            table[out, 1] = n
            table[out, 2] = n
            continue
        for e in range(indptr[u], indptr[u + 1]):
            row = out + e - indptr[u]
            table[row, 0] = np.uint32(min(np.round(alias_prob[e] * _TWO_32), _TWO_32 - 1.0))
            table[row, 1] = indices[e]
            table[row, 2] = indices[alias_index[e]]
    return walk_indptr, table


# --------------------------------------------------------------------------------------------
# public wrappers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CsrGraph:
    """Transition graph in CSR form; build it with :func:`build_csr`."""

    indptr: NDArray[np.int32]
    indices: NDArray[np.int32]
    prob: NDArray[np.float64]
    cum: NDArray[np.float64]
    alias_prob: NDArray[np.float64]
    alias_index: NDArray[np.int32]
    walk_indptr: NDArray[np.int32]
    walk_table: NDArray[np.uint32]

    @property
    def n_nodes(self) -> int:
        return int(self.indptr.shape[0] - 1)

    @property
    def n_edges(self) -> int:
        return int(self.indices.shape[0])


def _as_index_array(values: ArrayLike, name: str, upper: int) -> NDArray[np.int32]:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got {arr.dtype}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= upper):
        raise ValueError(f"{name} must lie in [0, {upper})")
    return np.ascontiguousarray(arr, dtype=np.int32)


def _as_weights(values: ArrayLike, name: str, size: int) -> NDArray[np.float64]:
    arr = np.ascontiguousarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] != size:
        raise ValueError(f"{name} must be one-dimensional with {size} entries")
    if size and (not np.all(np.isfinite(arr)) or float(arr.min()) <= 0.0):
        raise ValueError(f"{name} must be finite and > 0")
    return arr


def build_csr(n_nodes: int, src: ArrayLike, dst: ArrayLike, weight: ArrayLike) -> CsrGraph:
    """Build the CSR graph of ``n_nodes`` nodes from edge lists.

    ``weight`` (counts or probabilities, > 0) is normalized per source node, so each non-empty
    row sums to one. Edges keep their given order within a row (a stable sort by source), which
    is what makes the cumulative sampler replayable by the reference.
    """
    if not 0 <= n_nodes <= MAX_NODES:
        raise ValueError(f"n_nodes must lie in [0, {MAX_NODES}]")
    src_arr = _as_index_array(src, "src", n_nodes)
    dst_arr = _as_index_array(dst, "dst", n_nodes)
    m = src_arr.shape[0]
    if dst_arr.shape[0] != m:
        raise ValueError("src and dst must have the same length")
    if m > MAX_EDGES:
        raise ValueError(f"at most {MAX_EDGES} edges")
    w = _as_weights(weight, "weight", m)
    order = np.argsort(src_arr, kind="stable")
    src_sorted = src_arr[order]
    indices = np.ascontiguousarray(dst_arr[order])
    w_sorted = w[order]
    counts = np.bincount(src_sorted, minlength=n_nodes)
    indptr = np.zeros(n_nodes + 1, dtype=np.int32)
    np.cumsum(counts, out=indptr[1:])
    row_total = np.zeros(n_nodes, dtype=np.float64)
    np.add.at(row_total, src_sorted, w_sorted)
    prob = np.ascontiguousarray(w_sorted / row_total[src_sorted]) if m else np.zeros(0)
    cum = np.empty(m, dtype=np.float64)
    alias_prob = np.empty(m, dtype=np.float64)
    alias_index = np.empty(m, dtype=np.int32)
    _row_tables(indptr, prob, cum, alias_prob, alias_index)
    walk_indptr, walk_table = _walk_tables(indptr, indices, alias_prob, alias_index)
    return CsrGraph(indptr, indices, prob, cum, alias_prob, alias_index, walk_indptr, walk_table)


def _start_arrays(
    graph: CsrGraph, starts: ArrayLike, start_weights: ArrayLike | None
) -> tuple[NDArray[np.int32], NDArray[np.float64]]:
    start_arr = _as_index_array(starts, "starts", graph.n_nodes)
    if start_arr.shape[0] == 0:
        raise ValueError("starts must not be empty")
    if start_weights is None:
        return start_arr, np.zeros(0, dtype=np.float64)
    w = _as_weights(start_weights, "start_weights", start_arr.shape[0])
    # A sequential total (np.sum is pairwise) keeps the cumulative weights replayable.
    total = np.cumsum(w)[-1]
    return start_arr, np.cumsum(w / total)


def _check_count(value: int, name: str, upper: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer")
    if not 0 <= int(value) <= upper:
        raise ValueError(f"{name} must lie in [0, {upper}]")
    return int(value)


def walk_hits(
    graph: CsrGraph,
    starts: ArrayLike,
    *,
    steps: int,
    sims: int,
    seed: int,
    start_weights: ArrayLike | None = None,
    sampler: Sampler = "alias",
) -> NDArray[np.int64]:
    """Run ``sims`` walks and return the hits per node (int64, length ``n_nodes``).

    ``sampler="alias"`` draws a step in O(1); ``"cumulative"`` searches the in-row cumulative
    probabilities (same distribution, the draw the original design makes). Reproducible for a
    given ``seed`` (0 <= seed < 2**64) whatever the thread count.
    """
    steps = _check_count(steps, "steps", MAX_STEPS)
    sims = _check_count(sims, "sims", MAX_SIMS)
    seed = _check_count(seed, "seed", 2**64 - 1)
    if sampler not in _SAMPLERS:
        raise ValueError(f"sampler must be one of {sorted(_SAMPLERS)}")
    start_arr, start_cum = _start_arrays(graph, starts, start_weights)
    n_chunks = max(1, min(numba.get_num_threads(), sims))
    return _walk_hits(
        graph.indptr,
        graph.indices,
        graph.cum,
        graph.walk_indptr,
        graph.walk_table,
        start_arr,
        start_cum,
        steps,
        sims,
        np.uint64(seed),
        _SAMPLERS[sampler],
        n_chunks,
    )


def expected_visits(
    graph: CsrGraph,
    starts: ArrayLike,
    *,
    steps: int,
    start_weights: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """Exact expected hits per walk for every node (the limit of ``walk_hits / sims``)."""
    steps = _check_count(steps, "steps", MAX_STEPS)
    start_arr, start_cum = _start_arrays(graph, starts, start_weights)
    if start_cum.shape[0] == 0:
        share = np.full(start_arr.shape[0], 1.0 / start_arr.shape[0])
    else:
        share = np.diff(start_cum, prepend=0.0)
    start_dist = np.zeros(graph.n_nodes, dtype=np.float64)
    np.add.at(start_dist, start_arr, share)
    return _expected_visits(graph.indptr, graph.indices, graph.prob, start_dist, steps)


def warm_up() -> None:
    """Compile (or load from the cache) every kernel with the one signature the wrappers use."""
    graph = build_csr(2, [0], [1], [1.0])
    walk_hits(graph, [0], steps=1, sims=1, seed=0)
    walk_hits(graph, [0], steps=1, sims=1, seed=0, start_weights=[1.0])
    expected_visits(graph, [0], steps=1)
