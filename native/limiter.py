"""Public limiter front: validates its configuration, then hands out the compiled check.

``LimiterFront(Decision, clock_now, on_unknown, on_shadow)`` holds named policies, each over a
``native.gcra.GcraTable``; ``front.check(name, key, cost=1)`` is the compiled method itself
(``native._limiter``), which checks the name, the key's type and the cost range in C. Times
are integer microseconds read from ``clock_now()`` (seconds, rounded to the microsecond) or,
when it is ``None``, from the system's real-time clock in C.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from native import _limiter
from native.gcra import MAX_MICROS, GcraTable, check_range

#: Per-policy counters the compiled check increments; subclass it to add fields.
Counters = _limiter.Counters

#: The fields, in order, of the decision type the front builds (``core.ratelimit.Decision``).
DECISION_FIELDS = ("policy", "allowed", "remaining", "retry_after", "reset_after", "degraded")

D = TypeVar("D", bound=tuple[Any, ...])


class LimiterFront(Generic[D]):
    __slots__ = ("_front", "check", "names")

    def __init__(
        self,
        decision_type: type[D],
        clock_now: Callable[[], float] | None,
        on_unknown: Callable[[str], object],
        on_shadow: Callable[[D], object],
    ) -> None:
        # Items are written in place, bypassing the type's __new__: only a plain named tuple
        # with exactly these fields is accepted.
        if not (
            isinstance(decision_type, type)
            and issubclass(decision_type, tuple)
            and getattr(decision_type, "_fields", None) == DECISION_FIELDS
        ):
            raise TypeError(f"decision_type must be a named tuple with fields {DECISION_FIELDS}")
        if "__dict__" in dir(decision_type):
            raise TypeError("decision_type must not carry a __dict__")
        if clock_now is not None and not callable(clock_now):
            raise TypeError("clock_now must be callable or None")
        if not callable(on_unknown) or not callable(on_shadow):
            raise TypeError("on_unknown and on_shadow must be callable")
        self._front = _limiter.LimiterFront(decision_type, clock_now, on_unknown, on_shadow)
        #: ``check(name, key, cost=1) -> decision``: raises ``ValueError`` for a cost outside
        #: ``0..burst`` or not an ``int``, ``TypeError`` for a key that is not a ``str``, and
        #: whatever ``on_unknown`` raises (else ``KeyError``) for an unknown name.
        self.check: Callable[..., D] = self._front.check
        self.names: set[str] = set()

    def add(
        self,
        name: str,
        policy: object,
        *,
        interval: int,
        burst: int,
        shadow: bool,
        table: GcraTable,
        counters: _limiter.Counters,
    ) -> None:
        """Declare policy ``name`` (``policy`` is what decisions carry); names are unique."""
        if type(name) is not str or not name:
            raise TypeError("name must be a non-empty str")
        if name in self.names:
            raise ValueError(f"policy {name!r} is already declared")
        check_range("interval", interval, 1, MAX_MICROS)
        check_range("burst", burst, 1, MAX_MICROS // interval)
        if not isinstance(table, GcraTable) or not isinstance(counters, _limiter.Counters):
            raise TypeError("table must be a native.gcra.GcraTable and counters a Counters")
        self._front.add(name, policy, interval, burst, bool(shadow), table.kernel, counters)
        self.names.add(name)
