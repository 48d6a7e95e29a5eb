"""Chrome Speculation Rules from ranked routes.

The shape is the original design's: ``{"prerender": [...], "prefetch": [...]}``, each rule
``{"source": "document", "where": {"href_matches": ORIGIN + path}, "eagerness": ...}``. When
exclusions are configured, ``where`` becomes ``{"and": [{"href_matches": ...}, {"not":
{"href_matches": [excluded...]}}]}`` so the browser itself refuses those URLs too. Every rule
carries a ``tag`` naming the segment and the score bucket, which the browser echoes in
``Sec-Speculation-Tags`` so hit rates can be measured per bucket.

Routes of one bucket share one rule: its ``href_matches`` is the list of their patterns (rank
order; a single route keeps the plain string). The browser treats a list as "any of these", so
the answer means the same as one rule per route, in about a third of the bytes: the rules are
fetched on every page view.
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


def _rules(
    routes: Sequence[RankedRoute], eagerness: str, seg: str, config: RulesConfig, not_clause: Any
) -> list[dict[str, Any]]:
    """One rule per score bucket, in rank order: the routes of a bucket share its tag, so they
    share one rule whose ``href_matches`` lists their URL patterns (a link matching any of
    them), and the exclusions are written once per bucket instead of once per route."""
    grouped: dict[str, list[str]] = {}
    for route in routes:
        tag = f"{config.tag_prefix}-{seg}-{score_bucket(route.score, config.buckets)}"
        grouped.setdefault(tag, []).append(config.origin + escape_url_pattern(route.path))
    rules = []
    for tag, hrefs in grouped.items():
        href = {"href_matches": hrefs[0] if len(hrefs) == 1 else hrefs}
        where: dict[str, Any] = {"and": [href, not_clause]} if not_clause is not None else href
        rules.append({"source": "document", "where": where, "eagerness": eagerness, "tag": tag})
    return rules


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
        "prerender": _rules(head, config.prerender_eagerness, seg, config, not_clause),
        "prefetch": _rules(tail, config.prefetch_eagerness, seg, config, not_clause),
    }


def url_count(rules: list[dict[str, Any]]) -> int:
    """How many routes one action's ``rules`` speculate on (a rule may list several)."""
    count = 0
    for rule in rules:
        where = rule["where"]
        matches = where["and"][0]["href_matches"] if "and" in where else where["href_matches"]
        count += 1 if isinstance(matches, str) else len(matches)
    return count
