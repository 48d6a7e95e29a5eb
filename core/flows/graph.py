"""The transition graph of one segment, and the two ways of scoring its pages.

Paths become dense node ids; the edges go to the CSR walk kernels in ``native.walk``. Start pages
that no edge touches still become nodes (dead ends), so that, as in the original algorithm, the
walks drawn from them count toward ``sims`` and simply end at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from native import walk

Mode = Literal["montecarlo", "exact"]


@dataclass(frozen=True, slots=True)
class FlowGraph:
    paths: tuple[str, ...]
    ids: dict[str, int]
    csr: walk.CsrGraph

    @classmethod
    def from_edges(
        cls, edges: Iterable[tuple[str, str, int]], extra_paths: Iterable[str] = ()
    ) -> FlowGraph:
        """Build from ``(from, to, count)`` rows (count > 0); duplicate pairs add up."""
        ids: dict[str, int] = {}
        src: list[int] = []
        dst: list[int] = []
        counts: list[int] = []
        for a, b, c in edges:
            if c <= 0:
                continue
            src.append(ids.setdefault(a, len(ids)))
            dst.append(ids.setdefault(b, len(ids)))
            counts.append(c)
        for p in extra_paths:
            ids.setdefault(p, len(ids))
        csr = walk.build_csr(len(ids), src, dst, np.asarray(counts, dtype=np.float64))
        return cls(tuple(ids), ids, csr)

    @property
    def n_edges(self) -> int:
        return self.csr.n_edges

    def node_ids(self, paths: Sequence[str]) -> list[int]:
        return [self.ids[p] for p in paths]

    def scores(
        self,
        starts: Sequence[str],
        *,
        mode: Mode = "montecarlo",
        steps: int = 3,
        sims: int = 5000,
        seed: int = 0,
        start_weights: Sequence[float] | None = None,
    ) -> NDArray[np.float64]:
        """Expected visits per walk of every node: ``hits / sims`` or the exact value.

        Starts are drawn uniformly (the original design) unless ``start_weights`` are given.
        """
        start_ids = self.node_ids(starts)
        weights = list(start_weights) if start_weights else None
        if mode == "exact":
            return walk.expected_visits(self.csr, start_ids, steps=steps, start_weights=weights)
        if sims == 0:
            return np.zeros(len(self.paths))
        hits = walk.walk_hits(
            self.csr, start_ids, steps=steps, sims=sims, seed=seed, start_weights=weights
        )
        return hits / float(sims)
