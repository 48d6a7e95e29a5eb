"""One circuit breaker per provider, mirrored into the ``kervan_queue_breaker_state`` gauge.

Breakers live in each worker process: every process learns about an outage from its own calls,
which needs no coordination and fails safe (a process that has not seen the outage yet only
spends one window's worth of calls on it).
"""

from __future__ import annotations

from core.clock import Clock
from core.jobs import BreakerConfig, BreakerState, CircuitBreaker
from service.queue.metrics import BREAKER_STATE


class BreakerBoard:
    def __init__(self, config: BreakerConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, provider: str) -> CircuitBreaker:
        breaker = self._breakers.get(provider)
        if breaker is None:
            breaker = self._breakers[provider] = CircuitBreaker(self._config, self._clock)
        return breaker

    def publish(self) -> dict[str, str]:
        """Update the gauge; returns each provider's state name (for status endpoints)."""
        states: dict[str, str] = {}
        for provider, breaker in self._breakers.items():
            state = breaker.state
            BREAKER_STATE.labels(provider).set(int(state))
            states[provider] = state.name.lower()
        return states

    def state(self, provider: str) -> BreakerState:
        return self.get(provider).state
