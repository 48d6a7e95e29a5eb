"""From a segment's edges to its ranked routes: the original ``simulate`` plus the exact mode."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from core.flows.graph import FlowGraph, Mode
from core.flows.ranking import Exclusions, RankedRoute, rank
from core.flows.segments import DEFAULT_START_TEMPLATES, start_paths


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    steps: int = 3
    sims: int = 5000
    seed: int = 0
    top: int = 8
    min_score: float = 0.0
    start_templates: tuple[str, ...] = DEFAULT_START_TEMPLATES
    #: One weight per start template; empty = uniform starts, as the original design does.
    start_weights: tuple[float, ...] = ()


def rank_segment(
    edges: Iterable[tuple[str, str, int]],
    seg: str,
    config: SimulationConfig,
    *,
    mode: Mode = "montecarlo",
    exclusions: Exclusions | None = None,
    starts: Sequence[str] | None = None,
) -> list[RankedRoute]:
    """Routes of ``seg`` ranked by expected visits in ``config.steps`` steps from its starts."""
    start_list = list(starts) if starts is not None else start_paths(seg, config.start_templates)
    graph = FlowGraph.from_edges(edges, extra_paths=start_list)
    if graph.n_edges == 0:
        return []
    weights = config.start_weights if starts is None else ()
    scores = graph.scores(
        start_list,
        mode=mode,
        steps=config.steps,
        sims=config.sims,
        seed=config.seed,
        start_weights=weights or None,
    )
    return rank(
        graph.paths, scores, top=config.top, min_score=config.min_score, exclusions=exclusions
    )
