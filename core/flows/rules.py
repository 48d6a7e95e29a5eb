"""Chrome Speculation Rules from ranked routes.

The shape is the original design's: ``{"prerender": [...], "prefetch": [...]}``, each rule
``{"source": "document", "where": {"href_matches": ORIGIN + path}, "eagerness": ...}``. When
exclusions are configured, ``where`` becomes ``{"and": [{"href_matches": ...}, {"not":
{"href_matches": [excluded...]}}]}`` so the browser itself refuses those URLs too. Every rule
carries a ``tag`` naming the segment and the score bucket, which the browser echoes in
``Sec-Speculation-Tags`` so hit rates can be measured per bucket.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from core.flows.ranking import Exclusions, RankedRoute

#: Characters with a meaning in URL Pattern syntax; a literal one is escaped with "\".
_PATTERN_SPECIAL = frozenset(":*?+(){}\\")

#: Lower edges of the default score buckets (expected visits per walk).
DEFAULT_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


def escape_url_pattern(text: str) -> str:
    return "".join("\\" + ch if ch in _PATTERN_SPECIAL else ch for ch in text)


def score_bucket(score: float, edges: Sequence[float] = DEFAULT_BUCKETS) -> str:
    """``"s20"`` for a score in [0.2, next edge); ``"s0"`` below the first edge."""
    lower = 0.0
    for edge in sorted(edges):
        if score >= edge:
            lower = edge
    return f"s{round(lower * 100)}"


@dataclass(frozen=True, slots=True)
class RulesConfig:
    origin: str
    prerender_count: int = 2
    prefetch_count: int = 6
    prerender_eagerness: str = "moderate"
    prefetch_eagerness: str = "eager"
    exclusions: Exclusions = field(default_factory=lambda: Exclusions(()))
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    tag_prefix: str = "kervan"


def _rule(
    route: RankedRoute, eagerness: str, seg: str, config: RulesConfig, not_clause: Any
) -> dict[str, Any]:
    href = {"href_matches": config.origin + escape_url_pattern(route.path)}
    where: dict[str, Any] = {"and": [href, not_clause]} if not_clause is not None else href
    return {
        "source": "document",
        "where": where,
        "eagerness": eagerness,
        "tag": f"{config.tag_prefix}-{seg}-{score_bucket(route.score, config.buckets)}",
    }


def build_rules(
    routes: Sequence[RankedRoute], seg: str, config: RulesConfig
) -> dict[str, list[dict[str, Any]]]:
    """Top ``prerender_count`` routes prerendered, the next ``prefetch_count`` prefetched."""
    patterns = config.exclusions.patterns
    not_clause = (
        {"not": {"href_matches": [config.origin + p for p in patterns]}} if patterns else None
    )
    head = routes[: config.prerender_count]
    tail = routes[config.prerender_count : config.prerender_count + config.prefetch_count]
    return {
        "prerender": [_rule(r, config.prerender_eagerness, seg, config, not_clause) for r in head],
        "prefetch": [_rule(r, config.prefetch_eagerness, seg, config, not_clause) for r in tail],
    }
