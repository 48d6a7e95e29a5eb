"""Ranking of scored pages into the routes worth speculating."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from core.errors import ValidationFailed


@dataclass(frozen=True, slots=True)
class RankedRoute:
    path: str
    score: float  # expected visits per walk (hits / sims for the Monte-Carlo estimate)


#: An exclusion pattern: a path where ``*`` matches any run of characters (including ``/``),
#: the subset of URL Pattern syntax whose meaning is the same in Chrome and here.
_PATTERN = re.compile(r"^/[A-Za-z0-9/_.~%*-]{0,190}$")


def validate_exclusion(pattern: str) -> str:
    if _PATTERN.match(pattern) is None:
        raise ValidationFailed(
            "an excluded path must start with '/' and use only letters, digits, / _ . ~ % - "
            "and * (any characters)",
            details={"pattern": pattern},
        )
    return pattern


class Exclusions:
    """Paths that must never be speculated (logout, cart, admin ...)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(validate_exclusion(p) for p in patterns)
        parts = ["".join(".*" if ch == "*" else re.escape(ch) for ch in p) for p in self.patterns]
        self._regex = re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None

    def excludes(self, path: str) -> bool:
        return self._regex is not None and self._regex.fullmatch(path) is not None


def rank(
    paths: Sequence[str],
    scores: NDArray[np.float64],
    *,
    top: int,
    min_score: float = 0.0,
    exclusions: Exclusions | None = None,
) -> list[RankedRoute]:
    """The ``top`` best routes by score (ties by path), above ``min_score``, none excluded."""
    if top <= 0:
        return []
    candidates = np.flatnonzero((scores > 0.0) & (scores >= min_score))
    # Sort by descending score, then by path, so equal scores rank the same on every run.
    ordered = sorted(candidates.tolist(), key=lambda i: (-float(scores[i]), paths[i]))
    out: list[RankedRoute] = []
    for i in ordered:
        if exclusions is not None and exclusions.excludes(paths[i]):
            continue
        out.append(RankedRoute(paths[i], float(scores[i])))
        if len(out) == top:
            break
    return out
