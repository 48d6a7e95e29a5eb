"""Public GCRA table: validates its input, then calls the compiled kernel (``native._gcra``).

All times and durations are integer microseconds. ``interval`` is the emission interval of the
policy (period / rate) and ``burst`` how many units may be taken at once from a full bucket.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from native import _gcra

#: Keeps ``now + interval * burst * 2`` far from int64 overflow (about 146,000 years of µs).
MAX_MICROS = 1 << 62
#: Upper bound of the table size; one slot is 24 bytes plus the key string.
MAX_CAPACITY = 1 << 28


class GcraResult(NamedTuple):
    allowed: bool
    remaining: int
    retry_after: int
    reset_after: int


_new_result = tuple.__new__


def check_range(name: str, value: int, low: int, high: int) -> None:
    if type(value) is not int:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be within {low}..{high}, got {value}")


class GcraTable:
    """Per-key theoretical arrival times, bounded to ``capacity`` keys (see ``native._gcra``)."""

    __slots__ = ("_check", "_table", "check_trusted")

    def __init__(self, capacity: int) -> None:
        check_range("capacity", capacity, 1, MAX_CAPACITY)
        self._table = _gcra.GcraTable(capacity)
        self._check = self._table.check
        #: The kernel's check returning a plain ``(allowed, remaining, retry_after, reset_after)``
        #: tuple, for callers whose arguments are ints by construction (the in-process limiter:
        #: policies parsed at start-up, cost range-checked). Ranges are still checked in C.
        self.check_trusted: Callable[[str, int, int, int, int], tuple[bool, int, int, int]] = (
            self._table.check
        )

    @property
    def capacity(self) -> int:
        return self._table.capacity

    @property
    def kernel(self) -> _gcra.GcraTable:
        """The compiled table itself, for compiled callers (``native.limiter``)."""
        return self._table

    @property
    def evictions(self) -> int:
        """Entries dropped so far because the table was full."""
        return self._table.evictions

    @property
    def slot_count(self) -> int:
        return self._table.slot_count

    def __len__(self) -> int:
        return len(self._table)

    def check(self, key: str, now: int, interval: int, burst: int, cost: int = 1) -> GcraResult:
        """Consume ``cost`` units for ``key`` at time ``now`` if the policy allows it.

        ``cost`` may be 0 (a query that consumes nothing) but not more than ``burst``: such a
        request could never be allowed and is a caller's error.
        """
        # The kernel checks ranges in C (naming the bad argument): validating them here in Python
        # would cost four times the check itself. C conversion would truncate a float silently.
        if type(now) is not int or type(cost) is not int:
            raise TypeError(f"now and cost must be ints, got {now!r} and {cost!r}")
        return _new_result(GcraResult, self._check(key, now, interval, burst, cost))

    def tat(self, key: str, now: int) -> int:
        """The theoretical arrival time of ``key`` (``now`` when it has no live state)."""
        check_range("now", now, 0, MAX_MICROS)
        return self._table.get(key, now)

    def remove(self, key: str) -> bool:
        return self._table.remove(key)

    def sweep(self, now: int) -> int:
        """Drop expired entries; returns how many were dropped."""
        check_range("now", now, 0, MAX_MICROS)
        return self._table.sweep(now)

    def items(self) -> list[tuple[str, int]]:
        return self._table.items()

    def clear(self) -> None:
        self._table.clear()
