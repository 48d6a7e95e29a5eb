"""The walk kernels against both oracles: the exact solver and the plain-Python port."""

from __future__ import annotations

import math
import random

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from native import walk
from tests.reference import walk_ref

# A Monte-Carlo mean over `sims` walks of a per-walk visit count C in [0, steps] has variance
# <= steps * E[C] / sims (C^2 <= steps * C); Z bounds the deviation with a wide margin.
Z = 5.0


def random_graph(
    seed: int, n_nodes: int, n_edges: int, dead_ends: int = 0
) -> tuple[list[str], list[tuple[str, str, int]]]:
    """Paths and (from, to, count) rows; the last `dead_ends` nodes get no outgoing edge."""
    rng = random.Random(seed)
    paths = [f"/p{i}" for i in range(n_nodes)]
    live = paths[: n_nodes - dead_ends]
    rows: dict[tuple[str, str], int] = {}
    for src in live:  # every live node leaves somewhere
        rows[(src, rng.choice(paths))] = rng.randint(1, 50)
    while len(rows) < n_edges:
        # Skewed targets: a few pages attract most of the traffic, as on real sites.
        dst = paths[min(int(rng.paretovariate(1.2)) - 1, n_nodes - 1)]
        rows[(rng.choice(live), dst)] = rng.randint(1, 50)
    return paths, [(s, d, c) for (s, d), c in rows.items()]


def to_csr(
    paths: list[str], rows: list[tuple[str, str, int]]
) -> tuple[walk.CsrGraph, dict[str, int]]:
    ids = {p: i for i, p in enumerate(paths)}
    graph = walk.build_csr(
        len(paths),
        [ids[s] for s, _, _ in rows],
        [ids[d] for _, d, _ in rows],
        [c for _, _, c in rows],
    )
    return graph, ids


def within_bounds(estimate: np.ndarray, exact: np.ndarray, steps: int, sims: int) -> list[int]:
    """Indices whose estimate falls outside Z standard deviations (bound) of the exact value."""
    bound = Z * np.sqrt(steps * exact / sims) + 1e-12
    return [int(i) for i in np.flatnonzero(np.abs(estimate - exact) > bound)]


@pytest.mark.parametrize("seed", [1, 2, 3], ids=lambda s: f"seed={s}")
@pytest.mark.parametrize("weighted", [False, True], ids=["uniform-starts", "weighted-starts"])
def test_cumulative_sampler_replays_the_reference_hit_for_hit(seed: int, weighted: bool) -> None:
    paths, rows = random_graph(seed, n_nodes=40, n_edges=160, dead_ends=4)
    graph, ids = to_csr(paths, rows)
    starts = ["/p0", "/p3", "/p39"]  # /p39 is a dead end: its walks end at once
    weights = [1.0, 2.5, 0.5] if weighted else None
    sims, steps = 3000, 4

    hits = walk.walk_hits(
        graph,
        [ids[s] for s in starts],
        steps=steps,
        sims=sims,
        seed=seed,
        start_weights=weights,
        sampler="cumulative",
    )
    ref = walk_ref.simulate(
        walk_ref.normalize(rows),
        starts,
        steps=steps,
        sims=sims,
        streams=walk_ref.splitmix_streams(seed),
        start_weights=weights,
    )
    assert {paths[i]: int(h) for i, h in enumerate(hits) if h} == ref


@pytest.mark.parametrize("seed", [11, 12], ids=lambda s: f"seed={s}")
def test_exact_solver_matches_the_dict_programme(seed: int) -> None:
    paths, rows = random_graph(seed, n_nodes=60, n_edges=300, dead_ends=6)
    graph, ids = to_csr(paths, rows)
    starts = ["/p0", "/p1", "/p1"]  # a repeated start counts twice, as in the original
    for steps in (0, 1, 3, 7):
        exact = walk.expected_visits(graph, [ids[s] for s in starts], steps=steps)
        ref = walk_ref.expected_visits_ref(walk_ref.normalize(rows), starts, steps)
        expected = np.array([ref.get(p, 0.0) for p in paths])
        np.testing.assert_allclose(exact, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("sampler", ["alias", "cumulative"])
@pytest.mark.parametrize("seed", [21, 22, 23], ids=lambda s: f"seed={s}")
def test_estimate_lies_within_statistical_bounds_of_exact(seed: int, sampler: str) -> None:
    paths, rows = random_graph(seed, n_nodes=80, n_edges=500, dead_ends=5)
    graph, _ = to_csr(paths, rows)
    starts = [0, 1, 2]
    sims, steps = 200_000, 3
    hits = walk.walk_hits(graph, starts, steps=steps, sims=sims, seed=seed, sampler=sampler)  # type: ignore[arg-type]
    exact = walk.expected_visits(graph, starts, steps=steps)
    assert within_bounds(hits / sims, exact, steps, sims) == []
    # Nodes the exact solver cannot reach are never hit.
    assert not np.any(hits[exact == 0.0])


@pytest.mark.parametrize("seed", [31, 32], ids=lambda s: f"seed={s}")
def test_original_port_converges_to_the_exact_value_too(seed: int) -> None:
    # The oracle itself, with the original's single shared random stream.
    paths, rows = random_graph(seed, n_nodes=20, n_edges=70)
    edges = walk_ref.normalize(rows)
    sims, steps = 20_000, 3
    hits = walk_ref.simulate(edges, ["/p0"], steps, sims, walk_ref.python_streams(seed))
    exact = walk_ref.expected_visits_ref(edges, ["/p0"], steps)
    est = np.array([hits.get(p, 0) / sims for p in paths])
    ex = np.array([exact.get(p, 0.0) for p in paths])
    assert within_bounds(est, ex, steps, sims) == []


@pytest.mark.parametrize("seed", [41], ids=lambda s: f"seed={s}")
def test_ranking_is_stable_for_well_separated_scores(seed: int) -> None:
    # A hub page with a clear popularity order among its 10 targets, each leading back home.
    counts = [400, 250, 160, 100, 60, 36, 20, 11, 5, 2]
    rows = [("/", f"/t{i}", c) for i, c in enumerate(counts)]
    rows += [(f"/t{i}", "/", 1) for i in range(len(counts))]
    paths = ["/"] + [f"/t{i}" for i in range(len(counts))]
    graph, _ = to_csr(paths, rows)
    sims, steps = 5000, 3
    exact = walk.expected_visits(graph, [0], steps=steps)
    top_exact = [int(i) for i in np.argsort(-exact, kind="stable")[:8]]
    for s in range(seed, seed + 5):
        hits = walk.walk_hits(graph, [0], steps=steps, sims=sims, seed=s)
        assert [int(i) for i in np.argsort(-hits, kind="stable")[:8]] == top_exact


def test_reproducible_for_a_seed_whatever_the_thread_count() -> None:
    paths, rows = random_graph(5, n_nodes=50, n_edges=200)
    graph, _ = to_csr(paths, rows)

    def run(seed: int) -> np.ndarray:
        return walk.walk_hits(graph, [0, 7], steps=5, sims=10_001, seed=seed)

    first = run(99)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        single = run(99)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(first, single)
    np.testing.assert_array_equal(first, run(99))
    assert not np.array_equal(first, run(100))


def test_every_step_is_counted_when_no_walk_dies() -> None:
    paths, rows = random_graph(6, n_nodes=30, n_edges=90)  # no dead ends
    graph, _ = to_csr(paths, rows)
    hits = walk.walk_hits(graph, [0], steps=6, sims=777, seed=1)
    assert int(hits.sum()) == 777 * 6


def test_walks_from_a_dead_end_count_nothing() -> None:
    graph = walk.build_csr(3, [0], [1], [1])
    assert walk.walk_hits(graph, [2], steps=3, sims=100, seed=0).tolist() == [0, 0, 0]
    assert walk.walk_hits(graph, [0], steps=3, sims=100, seed=0).tolist() == [0, 100, 0]
    assert walk.expected_visits(graph, [0, 2], steps=3).tolist() == [0.0, 0.5, 0.0]


def test_empty_graph_and_zero_sims() -> None:
    graph = walk.build_csr(1, [], [], [])
    assert walk.walk_hits(graph, [0], steps=3, sims=10, seed=0).tolist() == [0]
    small = walk.build_csr(2, [0], [1], [1])
    assert walk.walk_hits(small, [0], steps=3, sims=0, seed=0).tolist() == [0, 0]


@settings(max_examples=40, deadline=None)
@given(
    weights=st.lists(
        st.lists(st.floats(0.001, 1000.0), min_size=1, max_size=12), min_size=1, max_size=6
    )
)
def test_alias_tables_reproduce_the_row_probabilities(weights: list[list[float]]) -> None:
    src = [r for r, row in enumerate(weights) for _ in row]
    dst = [k % len(weights) for row in weights for k in range(len(row))]
    flat = [w for row in weights for w in row]
    graph = walk.build_csr(len(weights), src, dst, flat)
    for u in range(graph.n_nodes):
        lo, hi = int(graph.indptr[u]), int(graph.indptr[u + 1])
        degree = hi - lo
        # P(edge e) = (alias_prob[e] + sum of (1 - alias_prob[j]) over j aliased to e) / degree
        got = np.zeros(graph.n_edges)
        for j in range(lo, hi):
            got[j] += graph.alias_prob[j] / degree
            got[graph.alias_index[j]] += (1.0 - graph.alias_prob[j]) / degree
        np.testing.assert_allclose(got[lo:hi], graph.prob[lo:hi], atol=1e-12)
        assert all(lo <= graph.alias_index[j] < hi for j in range(lo, hi))
        assert math.isclose(graph.cum[hi - 1], 1.0, rel_tol=1e-12)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: walk.build_csr(2, [0], [2], [1]), "dst must lie"),
        (lambda: walk.build_csr(2, [0, 1], [1], [1, 1]), "same length"),
        (lambda: walk.build_csr(2, [0], [1], [0.0]), "weight must be finite and > 0"),
        (lambda: walk.build_csr(2, [0], [1], [float("nan")]), "weight must be finite"),
        (lambda: walk.build_csr(-1, [], [], []), "n_nodes"),
    ],
)
def test_build_rejects_bad_input(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def test_build_rejects_non_integer_indices() -> None:
    with pytest.raises(TypeError, match="integers"):
        walk.build_csr(2, [0.5], [1], [1])


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"starts": []}, ValueError),
        ({"starts": [5]}, ValueError),
        ({"steps": -1}, ValueError),
        ({"steps": walk.MAX_STEPS + 1}, ValueError),
        ({"sims": 1.5}, TypeError),
        ({"seed": -1}, ValueError),
        ({"seed": 2**64}, ValueError),
        ({"sampler": "magic"}, ValueError),
        ({"start_weights": [1.0, 2.0]}, ValueError),
        ({"start_weights": [-1.0]}, ValueError),
    ],
)
def test_walk_rejects_bad_input(kwargs: dict[str, object], error: type[Exception]) -> None:
    graph = walk.build_csr(2, [0], [1], [1])
    call: dict[str, object] = {"starts": [0], "steps": 3, "sims": 10, "seed": 0, **kwargs}
    starts = call.pop("starts")
    with pytest.raises(error):
        walk.walk_hits(graph, starts, **call)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [51, 52], ids=lambda s: f"seed={s}")
def test_numpy_baseline_is_a_fair_competitor(seed: int) -> None:
    # The benchmark's NumPy walk must be correct too, or the speed ratio means nothing.
    from native.walk_numpy import walk_hits_numpy

    paths, rows = random_graph(seed, n_nodes=80, n_edges=500, dead_ends=5)
    graph, _ = to_csr(paths, rows)
    sims, steps = 200_000, 3
    hits = walk_hits_numpy(graph, [0, 1, 2], steps=steps, sims=sims, seed=seed)
    exact = walk.expected_visits(graph, [0, 1, 2], steps=steps)
    assert within_bounds(hits / sims, exact, steps, sims) == []


@settings(max_examples=40, deadline=None)
@given(
    weights=st.lists(
        st.lists(st.floats(0.001, 1000.0), min_size=1, max_size=12), min_size=1, max_size=6
    ),
    dead=st.integers(0, 2),
)
def test_integer_walk_tables_reproduce_the_row_probabilities(
    weights: list[list[float]], dead: int
) -> None:
    n = len(weights) + dead  # the last `dead` nodes have no edges
    src = [r for r, row in enumerate(weights) for _ in row]
    dst = [k % n for row in weights for k in range(len(row))]
    graph = walk.build_csr(n, src, dst, [w for row in weights for w in row])
    table, wptr = graph.walk_table.astype(np.float64), graph.walk_indptr
    for u in range(n + 1):
        lo, hi = int(wptr[u]), int(wptr[u + 1])
        got = np.zeros(n + 1)
        for j in range(lo, hi):
            heads = table[j, 0] / 2.0**32  # P(coin < threshold)
            got[int(table[j, 1])] += heads / (hi - lo)
            got[int(table[j, 2])] += (1.0 - heads) / (hi - lo)
        want = np.zeros(n + 1)
        if u < n and graph.indptr[u] < graph.indptr[u + 1]:
            a, b = int(graph.indptr[u]), int(graph.indptr[u + 1])
            np.add.at(want, graph.indices[a:b], graph.prob[a:b])
        else:
            want[n] = 1.0  # dead ends and the exit node lead to the exit node
        np.testing.assert_allclose(got, want, atol=1e-9)
