"""Exponential backoff with full jitter.

Full jitter (a uniform draw between zero and the exponential ceiling) spreads retries of many
jobs that failed together - e.g. during a provider outage - so they do not return in lockstep.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


def backoff_ceiling(attempt: int, base: float, cap: float) -> float:
    """The upper bound of the delay after failed attempt number ``attempt`` (1-based)."""
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    if base < 0 or cap < 0:
        raise ValueError("base and cap must be non-negative")
    # Stop doubling once past the cap: 2**attempt would overflow a float for huge attempt counts.
    exponent = min(attempt - 1, 64)
    return min(cap, base * (2.0**exponent))


def full_jitter_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """A delay drawn uniformly from ``[0, min(cap, base * 2**(attempt-1))]``."""
    return rng.uniform(0.0, backoff_ceiling(attempt, base, cap))


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Backoff parameters of one queue (seconds)."""

    base: float = 1.0
    cap: float = 300.0

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0:
            raise ValueError("base and cap must be non-negative")

    def delay(self, attempt: int, rng: random.Random) -> float:
        return full_jitter_delay(attempt, self.base, self.cap, rng)
