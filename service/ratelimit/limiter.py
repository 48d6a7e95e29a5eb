"""The rate-limiting facility: named policies over a GCRA store, with failure and shadow modes.

``await limiter.check("otp.send", phone)`` -> ``Decision``. ``decision.refused`` says whether to
refuse; a shadow policy counts and logs what it would refuse and never refuses. When the backend
fails, the policy's failure mode answers: ``open`` allows (counting the incident), ``closed``
refuses with ``decision.degraded`` set (HTTP maps that to 503, not 429).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from prometheus_client import Counter

from core.errors import BackendUnavailable
from core.ratelimit import Catalog, Decision, FailureMode, Policy, degraded_decision
from service.logging import get_logger
from service.ratelimit import metrics
from service.ratelimit.base import GcraStore

if TYPE_CHECKING:
    from service.ratelimit.lockouts import Lockouts

log = get_logger("kervan.ratelimit")


class _PolicyMetrics:
    __slots__ = ("checks", "failures", "refused", "shadow_refused")

    def __init__(self, policy: Policy) -> None:
        self.checks: Counter = metrics.CHECKS.labels(policy.name)
        self.refused: Counter = metrics.REFUSALS.labels(policy.name, "enforced")
        self.shadow_refused: Counter = metrics.REFUSALS.labels(policy.name, "shadow")
        self.failures: Counter = metrics.BACKEND_FAILURES.labels(
            policy.name, policy.failure_mode.value
        )


class RateLimiter:
    #: Failure-counting lockouts in the same backend, attached by ``factory.build_rate_limiter``.
    lockouts: Lockouts

    def __init__(self, catalog: Catalog, store: GcraStore) -> None:
        self.catalog = catalog
        self.store = store
        self._metrics = {name: _PolicyMetrics(p) for name, p in catalog.policies.items()}

    @property
    def kind(self) -> str:
        return self.store.kind

    async def check(self, policy_name: str, key: str, cost: int = 1) -> Decision:
        """Consume ``cost`` units of ``policy_name`` for ``key`` (0 only reads the state)."""
        policy = self.catalog.policy(policy_name)
        if not 0 <= cost <= policy.burst:
            raise ValueError(f"cost must be within 0..{policy.burst} for {policy_name!r}")
        counters = self._metrics[policy.name]
        counters.checks.inc()
        try:
            decision = await self.store.check(policy, key, cost)
        except BackendUnavailable as error:
            counters.failures.inc()
            allowed = policy.failure_mode is FailureMode.OPEN
            log.warning(
                "rate-limit backend failed; policy %s fails %s: %s",
                policy.name,
                policy.failure_mode.value,
                error.message,
            )
            return degraded_decision(policy, allowed=allowed)
        if not decision.allowed:
            if policy.shadow:
                counters.shadow_refused.inc()
                log.info(
                    "shadow policy %s would refuse",
                    policy.name,
                    extra={"policy": policy.name, "retry_after_us": decision.retry_after},
                )
            else:
                counters.refused.inc()
        return decision

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
