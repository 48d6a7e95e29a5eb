"""The rate-limiting facility: named policies over a GCRA store, with failure and shadow modes.

``await limiter.check("otp.send", phone)`` -> ``Decision``. ``decision.refused`` says whether to
refuse; a shadow policy counts and logs what it would refuse and never refuses. When the backend
fails, the policy's failure mode answers: ``open`` allows (counting the incident), ``closed``
refuses with ``decision.degraded`` set (HTTP maps that to 503, not 429).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from core.errors import BackendUnavailable
from core.ratelimit import Catalog, Decision, FailureMode, Policy, degraded_decision
from service.backends.health_log import outage_logged
from service.logging import get_logger
from service.ratelimit.base import GcraStore
from service.ratelimit.memory import MemoryGcraStore
from service.ratelimit.metrics import COLLECTOR, PolicyStats, StatsSource

if TYPE_CHECKING:
    from service.ratelimit.lockouts import Lockouts

log = get_logger("kervan.ratelimit")

SHADOW_LOG_INTERVAL = 10.0


class RateLimiter(StatsSource):
    #: Failure-counting lockouts in the same backend, attached by ``factory.build_rate_limiter``.
    lockouts: Lockouts

    #: ``check`` without a coroutine, for in-process stores: same answers, same counters, same
    #: shadow mode (an in-process store cannot fail, so no failure mode applies). It is the
    #: compiled front (``native.limiter``): policy lookup, clock, GCRA, counters and the
    #: ``Decision`` in one C call. Raises ``RuntimeError`` on a store that needs I/O (Redis):
    #: use ``await check`` there.
    check_now: Callable[..., Decision]

    def __init__(self, catalog: Catalog, store: GcraStore) -> None:
        self.catalog = catalog
        self.store = store
        self.stats = {
            name: PolicyStats(policy.failure_mode.value)
            for name, policy in catalog.policies.items()
        }
        self._entries = {
            name: (policy, self.stats[name]) for name, policy in catalog.policies.items()
        }
        self._front: Callable[..., Decision] | None = None
        if isinstance(store, MemoryGcraStore):
            self._front = store.front(
                self._entries.values(),
                self.catalog.policy,  # raises KeyError naming the unknown policy
                self._log_shadow,
            ).check
        self.check_now = self._front if self._front is not None else self._no_synchronous_check
        COLLECTOR.add(self)

    @property
    def kind(self) -> str:
        return self.store.kind

    async def check(self, policy_name: str, key: str, cost: int = 1) -> Decision:
        """Consume ``cost`` units of ``policy_name`` for ``key`` (0 only reads the state)."""
        if self._front is not None:
            return self._front(policy_name, key, cost)
        entry = self._entries.get(policy_name)
        if entry is None:
            self.catalog.policy(policy_name)  # raises KeyError naming the policy
            raise AssertionError("unreachable")  # pragma: no cover
        policy, stats = entry
        if type(cost) is not int or not 0 <= cost <= policy.burst:
            raise ValueError(f"cost must be an int within 0..{policy.burst} for {policy_name!r}")
        stats.checks += 1
        try:
            decision = await self.store.check(policy, key, cost)
        except BackendUnavailable as error:
            return self._degraded(policy, stats, error)
        if not decision.allowed:
            if policy.shadow:
                stats.shadow_refused += 1
                self._log_shadow(decision)
            else:
                stats.refused += 1
        return decision

    @property
    def synchronous(self) -> bool:
        """Whether ``check_now`` is available (the store is in-process)."""
        return self._front is not None

    def _no_synchronous_check(self, policy_name: str, key: str, cost: int = 1) -> Decision:
        raise RuntimeError(f"the {self.kind} rate-limit store has no synchronous check")

    def _log_shadow(self, decision: Decision) -> None:
        """A shadow policy would have refused (already counted): one log line per policy per
        interval, so a flood does not become a log flood."""
        policy = decision.policy
        stats = self.stats[policy.name]
        now = time.monotonic()
        if now - stats.last_shadow_log >= SHADOW_LOG_INTERVAL:
            stats.last_shadow_log = now
            log.info(
                "shadow policy %s would refuse (%d so far)",
                policy.name,
                stats.shadow_refused,
                extra={"policy": policy.name, "retry_after_us": decision.retry_after},
            )

    def _degraded(self, policy: Policy, stats: PolicyStats, error: BackendUnavailable) -> Decision:
        stats.failures += 1
        # Checked on every request: an outage is logged as it begins and ends, not per check.
        source = f"rate limit {policy.name}, failing {policy.failure_mode.value}"
        if not outage_logged(error, source):
            log.warning(
                "rate-limit backend failed; policy %s fails %s: %s",
                policy.name,
                policy.failure_mode.value,
                error.message,
            )
        return degraded_decision(policy, allowed=policy.failure_mode is FailureMode.OPEN)

    async def check_all(self, checks: Sequence[tuple[str, str, int]]) -> list[Decision]:
        """Several policies at once (e.g. per IP and per account); concurrent, so batched."""
        if len(checks) == 1:
            name, key, cost = checks[0]
            return [await self.check(name, key, cost)]
        return list(await asyncio.gather(*(self.check(n, k, c) for n, k, c in checks)))

    async def reset(self, policy_name: str, key: str) -> None:
        await self.store.reset(self.catalog.policy(policy_name), key)

    async def start(self) -> None:
        await self.store.start()

    async def stop(self) -> None:
        await self.store.stop()
