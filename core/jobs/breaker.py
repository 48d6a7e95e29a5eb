"""Per-provider circuit breaker: closed -> open on error rate over a window -> half-open probes.

While a provider is down, retrying every job against it only burns attempts; the open breaker
defers jobs instead (without consuming an attempt) until a few probe calls show it is back.
Time comes from an injected clock, so the state machine is tested without sleeping.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from core.clock import Clock


class BreakerState(enum.IntEnum):
    # The numeric values are what the Prometheus gauge reports.
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    window_seconds: float = 30.0
    min_calls: int = 10
    failure_ratio: float = 0.5
    open_seconds: float = 30.0
    half_open_probes: int = 1  # calls let through at once while half-open
    successes_to_close: int = 2

    def __post_init__(self) -> None:
        if self.window_seconds <= 0 or self.open_seconds <= 0:
            raise ValueError("window_seconds and open_seconds must be positive")
        if self.min_calls < 1 or self.half_open_probes < 1 or self.successes_to_close < 1:
            raise ValueError("min_calls, half_open_probes and successes_to_close must be >= 1")
        if not 0.0 < self.failure_ratio <= 1.0:
            raise ValueError("failure_ratio must be in (0, 1]")


class CircuitBreaker:
    def __init__(self, config: BreakerConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._window: deque[tuple[float, bool]] = deque()
        self._failures_in_window = 0
        self._opened_at = 0.0
        self._probes_in_flight = 0
        self._probe_successes = 0

    @property
    def config(self) -> BreakerConfig:
        return self._config

    @property
    def state(self) -> BreakerState:
        self._tick()
        return self._state

    def retry_after(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when calls are allowed now)."""
        self._tick()
        if self._state is BreakerState.OPEN:
            return max(0.0, self._opened_at + self._config.open_seconds - self._clock.monotonic())
        if self._state is BreakerState.HALF_OPEN and not self._probe_slot_free():
            # Probes are running; check back shortly rather than after a full open period.
            return min(1.0, self._config.open_seconds)
        return 0.0

    def allow(self) -> bool:
        """Ask to make one call. A True answer must be followed by exactly one ``record_*``."""
        self._tick()
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.HALF_OPEN and self._probe_slot_free():
            self._probes_in_flight += 1
            return True
        return False

    def record_success(self) -> None:
        self._record(ok=True)

    def record_failure(self) -> None:
        self._record(ok=False)

    def record_neutral(self) -> None:
        """The allowed call said nothing about the provider's health (e.g. it was cancelled)."""
        if self._state is BreakerState.HALF_OPEN and self._probes_in_flight > 0:
            self._probes_in_flight -= 1

    def _probe_slot_free(self) -> bool:
        return self._probes_in_flight < self._config.half_open_probes

    def _record(self, *, ok: bool) -> None:
        self._tick()
        if self._state is BreakerState.HALF_OPEN:
            self._probes_in_flight = max(0, self._probes_in_flight - 1)
            if not ok:
                self._open()
                return
            self._probe_successes += 1
            if self._probe_successes >= self._config.successes_to_close:
                self._close()
            return
        if self._state is BreakerState.OPEN:
            # A call allowed before the breaker opened finished late; its result is stale.
            return
        now = self._clock.monotonic()
        self._window.append((now, ok))
        if not ok:
            self._failures_in_window += 1
        self._prune(now)
        calls = len(self._window)
        if (
            calls >= self._config.min_calls
            and self._failures_in_window / calls >= self._config.failure_ratio
        ):
            self._open()

    def _tick(self) -> None:
        if (
            self._state is BreakerState.OPEN
            and self._clock.monotonic() >= self._opened_at + self._config.open_seconds
        ):
            self._state = BreakerState.HALF_OPEN
            self._probes_in_flight = 0
            self._probe_successes = 0

    def _prune(self, now: float) -> None:
        horizon = now - self._config.window_seconds
        while self._window and self._window[0][0] < horizon:
            _, ok = self._window.popleft()
            if not ok:
                self._failures_in_window -= 1

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock.monotonic()
        self._window.clear()
        self._failures_in_window = 0
        self._probes_in_flight = 0
        self._probe_successes = 0

    def _close(self) -> None:
        self._state = BreakerState.CLOSED
        self._window.clear()
        self._failures_in_window = 0
        self._probes_in_flight = 0
        self._probe_successes = 0
