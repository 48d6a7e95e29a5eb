"""The degrade decision, with hysteresis, as a pure state machine.

Each evaluation gets the current signals (event-loop lag, request p99, oldest job age) and their
thresholds. The mode is entered when some signal has been at or above its threshold for
``enter_after`` seconds in a row, and left only when every signal has been below
``exit_ratio`` times its threshold for ``exit_after`` seconds in a row: a load hovering around
a threshold does not flap the mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Change:
    degraded: bool
    reasons: tuple[str, ...]


@dataclass
class Hysteresis:
    enter_after: float
    exit_after: float
    exit_ratio: float
    degraded: bool = False
    since: float | None = None
    reasons: tuple[str, ...] = ()
    _over_since: float | None = field(default=None, repr=False)
    _calm_since: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.exit_ratio <= 1:
            raise ValueError("exit_ratio must be within (0, 1]")
        if self.enter_after < 0 or self.exit_after < 0:
            raise ValueError("enter_after and exit_after must be >= 0")

    def evaluate(
        self, now: float, signals: Mapping[str, float], thresholds: Mapping[str, float]
    ) -> Change | None:
        """Feed one evaluation; the change of mode it causes, if any. Signals without a
        threshold (or with a threshold <= 0: that signal is off) are ignored."""
        live = {k: v for k, v in signals.items() if thresholds.get(k, 0) > 0}
        over = tuple(sorted(k for k, v in live.items() if v >= thresholds[k]))
        calm = all(v < thresholds[k] * self.exit_ratio for k, v in live.items())
        if not self.degraded:
            if not over:
                self._over_since = None
                return None
            if self._over_since is None:
                self._over_since = now
            if now - self._over_since >= self.enter_after:
                self.degraded, self.since, self.reasons = True, now, over
                self._over_since = self._calm_since = None
                return Change(True, over)
            return None
        if over:
            self.reasons = tuple(sorted(set(self.reasons) | set(over)))
        if not calm:
            self._calm_since = None
            return None
        if self._calm_since is None:
            self._calm_since = now
        if now - self._calm_since >= self.exit_after:
            reasons = self.reasons
            self.degraded, self.since, self.reasons = False, None, ()
            self._calm_since = self._over_since = None
            return Change(False, reasons)
        return None
