"""Builds the rate-limiting facility from settings and backends (memory or Redis by URL)."""

from __future__ import annotations

from core.clock import Clock, SystemClock
from core.ratelimit import Catalog, build_catalog, parse_assignments
from service.backends import Backends
from service.periodic import Periodic
from service.ratelimit.limiter import RateLimiter
from service.ratelimit.lockouts import AuditSink, Lockouts
from service.ratelimit.memory import MemoryGcraStore, MemoryLockoutStore
from service.ratelimit.redis_store import RedisGcraStore, RedisLockoutStore
from service.settings import Settings

GAUGE_REFRESH_SECONDS = 15.0


def catalog_from_settings(settings: Settings) -> Catalog:
    return build_catalog(
        parse_assignments(settings.ratelimit_policies, "rate-limit policy"),
        parse_assignments(settings.ratelimit_lockouts, "lockout rule"),
    )


def build_rate_limiter(
    settings: Settings, backends: Backends, clock: Clock, audit: AuditSink
) -> RateLimiter:
    """The limiter (with its ``lockouts``) over the process's backends.

    On Redis the scripts use the server's clock unless a test injected its own clock: every
    process then agrees on time even when host clocks drift.
    """
    catalog = catalog_from_settings(settings)
    if backends.redis is None:
        limiter = RateLimiter(catalog, MemoryGcraStore(clock, settings.ratelimit_memory_capacity))
        lockout_store: MemoryLockoutStore | RedisLockoutStore = MemoryLockoutStore(
            clock, settings.ratelimit_lockout_memory_capacity
        )
    else:
        redis_clock = None if isinstance(clock, SystemClock) else clock
        limiter = RateLimiter(
            catalog,
            RedisGcraStore(
                backends.redis,
                backends.namespace,
                clock=redis_clock,
                max_batch=settings.ratelimit_redis_max_batch,
                max_inflight=settings.ratelimit_redis_max_inflight,
            ),
        )
        lockout_store = RedisLockoutStore(backends.redis, backends.namespace, clock=redis_clock)
    limiter.lockouts = Lockouts(catalog, lockout_store, audit)
    return limiter


class LockGaugeRefresher(Periodic):
    """Keeps ``kervan_lockouts_active`` current (locks expire without any event to count)."""

    name = "lockout-gauge"

    def __init__(self, lockouts: Lockouts, interval: float = GAUGE_REFRESH_SECONDS) -> None:
        super().__init__(interval)
        self._lockouts = lockouts

    async def step(self) -> None:
        await self._lockouts.refresh_gauge()

    def on_error(self, error: Exception) -> None:
        # The backend's outage is reported by /ready and the limiter's failure counters; a
        # gauge refresh every few seconds would only repeat it.
        return None
