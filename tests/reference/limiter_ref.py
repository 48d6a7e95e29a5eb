"""Plain-Python oracle of the compiled limiter front (``native/_limiter.pyx``).

The same contract, written plainly: named policies, each with its own GCRA table (the
``GcraReference``), a clock in seconds rounded to the microsecond, counters of checks and
refusals, the decision built by its type's constructor and shadow refusals handed to a callback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.reference.gcra_ref import GcraReference


@dataclass
class ReferenceCounters:
    checks: int = 0
    refused: int = 0
    shadow_refused: int = 0


@dataclass
class _Entry:
    policy: Any
    interval: int
    burst: int
    shadow: bool
    table: GcraReference
    counters: ReferenceCounters = field(default_factory=ReferenceCounters)


class LimiterReference:
    def __init__(
        self,
        decision_type: Callable[..., Any],
        clock_now: Callable[[], float],
        on_shadow: Callable[[Any], object],
    ) -> None:
        self.decision_type = decision_type
        self.clock_now = clock_now
        self.on_shadow = on_shadow
        self.entries: dict[str, _Entry] = {}

    def add(
        self, name: str, policy: Any, interval: int, burst: int, shadow: bool, capacity: int
    ) -> ReferenceCounters:
        entry = _Entry(policy, interval, burst, shadow, GcraReference(capacity))
        self.entries[name] = entry
        return entry.counters

    def check(self, name: str, key: str, cost: int = 1) -> Any:
        entry = self.entries[name]
        if type(cost) is not int or not 0 <= cost <= entry.burst:
            raise ValueError(f"cost must be an int within 0..{entry.burst} for {name!r}")
        now = round(self.clock_now() * 1_000_000)
        allowed, remaining, retry_after, reset_after = entry.table.check(
            key, now, entry.interval, entry.burst, cost
        )
        entry.counters.checks += 1
        decision = self.decision_type(
            entry.policy, allowed, remaining, retry_after, reset_after, False
        )
        if not allowed:
            if entry.shadow:
                entry.counters.shadow_refused += 1
                self.on_shadow(decision)
            else:
                entry.counters.refused += 1
        return decision
