"""Handle-time statistics and the waiting-time estimate of the live-support queue (pure).

Handle times (from an admin taking a customer to finishing) feed two exponentially weighted
moving averages, updated the way TCP estimates round-trip times (RFC 6298), with one weight
``alpha`` for both::

    first sample s:   ewma = s,  spread = s / 2
    each later s:     spread += alpha * (|s - ewma| - spread)   (with the ewma before this s)
                      ewma   += alpha * (s - ewma)

``spread`` is the moving mean absolute deviation, so it follows how much handle times vary
without keeping any history. The state backends store the result of ``record_handle`` (the Lua
script of the Redis backend repeats these exact operations, so both agree to the last bit).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_ALPHA = 0.2


@dataclass(frozen=True, slots=True)
class HandleStats:
    ewma: float  # seconds
    spread: float  # seconds: moving mean absolute deviation of the handle times
    count: int  # handle times recorded


@dataclass(frozen=True, slots=True)
class Eta:
    seconds: float
    low: float
    high: float


def check_alpha(alpha: float) -> float:
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be within (0, 1], not {alpha!r}")
    return float(alpha)


def record_handle(
    stats: HandleStats | None, seconds: float, *, alpha: float = DEFAULT_ALPHA
) -> HandleStats:
    """The statistics after one more handle time (a negative one, from clocks of two processes
    that disagree, counts as zero)."""
    check_alpha(alpha)
    sample = seconds if seconds > 0.0 else 0.0
    if stats is None:
        return HandleStats(sample, sample / 2, 1)
    spread = stats.spread + alpha * (abs(sample - stats.ewma) - stats.spread)
    ewma = stats.ewma + alpha * (sample - stats.ewma)
    return HandleStats(ewma, spread, stats.count + 1)


def estimate(
    position: int,
    ewma: float | None,
    *,
    default_handle: float,
    free_soon: Sequence[float] = (),
    spread: float | None = None,
) -> Eta:
    """The wait of the customer at ``position`` (1-based), in seconds, with a low-high range.

    ``H`` is ``ewma``, or ``default_handle`` before any handle time is known; ``D`` is
    ``spread``, or ``H / 2`` when unknown (the same start as ``record_handle``'s).

    ``free_soon`` holds, for each admin serving a customer now, the seconds it has talked so
    far. Admin ``i`` is expected free after ``r_i = max(H - talked_i, 0)`` and then takes a new
    customer every ``H``, so the customer at position ``p`` with ``k`` such admins is taken at::

        seconds = sorted(r)[(p - 1) % k] + ((p - 1) // k) * H

    Without ``free_soon`` (no admin known) this is one admin who just started: ``p * H``.

    The range adds the spread of the ``m = (p - 1) // k + 1`` handle times that wait is made
    of: handle times vary independently, so their sum varies with the square root of their
    number, not linearly (which would make the range of a long queue uselessly wide)::

        low  = max(seconds - D * sqrt(m), 0)
        high = seconds + D * sqrt(m)
    """
    if position < 1:
        raise ValueError(f"position is 1-based, not {position!r}")
    if not default_handle > 0:
        raise ValueError(f"default_handle must be positive, not {default_handle!r}")
    handle = default_handle if ewma is None else max(ewma, 0.0)
    deviation = handle / 2 if spread is None else max(spread, 0.0)
    remaining = sorted(max(handle - max(talked, 0.0), 0.0) for talked in free_soon)
    if not remaining:
        remaining = [handle]
    admins = len(remaining)
    rounds, slot = divmod(position - 1, admins)
    seconds = remaining[slot] + rounds * handle
    margin = deviation * math.sqrt(rounds + 1)
    return Eta(seconds, max(seconds - margin, 0.0), seconds + margin)
