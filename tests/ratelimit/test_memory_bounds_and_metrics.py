"""In-process bounds under floods of distinct keys, and the metrics every check feeds."""

from __future__ import annotations

import gc

from core.clock import ManualClock
from core.ratelimit import Catalog
from service.metrics import REGISTRY
from service.ratelimit.limiter import RateLimiter
from service.ratelimit.lockouts import Lockouts
from service.ratelimit.memory import MemoryGcraStore, MemoryLockoutStore
from tests.ratelimit.conftest import AuditLog


async def test_gcra_store_stays_bounded_per_policy(catalog: Catalog) -> None:
    store = MemoryGcraStore(ManualClock(), 500)
    limiter = RateLimiter(catalog, store)
    for i in range(5_000):
        assert (await limiter.check("t.slow", f"flood-{i}")).allowed
    table = store.tables["t.slow"]
    assert len(table) <= 500 and table.evictions >= 4_500


async def test_lockout_store_keeps_locks_when_flooded(catalog: Catalog) -> None:
    clock = ManualClock()
    store = MemoryLockoutStore(clock, 100)
    lockouts = Lockouts(catalog, store, AuditLog())
    for _ in range(3):
        await lockouts.failure("t.lock", "victim")
    for i in range(2_000):
        await lockouts.failure("t.lock", f"spray-{i}")
        clock.advance(0.001)
    assert len(store._states) <= 100
    assert (await lockouts.status("t.lock", "victim")).locked


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_checks_refusals_and_locks_are_exported(catalog: Catalog) -> None:
    clock = ManualClock()
    limiter = RateLimiter(catalog, MemoryGcraStore(clock, 100))
    limiter.lockouts = Lockouts(catalog, MemoryLockoutStore(clock, 100), AuditLog())
    checks = {"policy": "t.tight"}
    shadow = {"policy": "t.shadow", "mode": "shadow"}
    enforced = {"policy": "t.tight", "mode": "enforced"}
    # The exported counters sum every live limiter: limiters of earlier tests that only a
    # reference cycle still holds must not vanish between the two readings.
    gc.collect()
    before = (
        sample("kervan_ratelimit_checks_total", checks),
        sample("kervan_ratelimit_refusals_total", enforced),
        sample("kervan_ratelimit_refusals_total", shadow),
        sample("kervan_lockouts_total", {"rule": "t.lock"}),
    )
    for _ in range(5):
        await limiter.check("t.tight", "m")
        await limiter.check("t.shadow", "m")
    for _ in range(3):
        await limiter.lockouts.failure("t.lock", "m")
    assert await limiter.lockouts.refresh_gauge() == 1
    after = (
        sample("kervan_ratelimit_checks_total", checks),
        sample("kervan_ratelimit_refusals_total", enforced),
        sample("kervan_ratelimit_refusals_total", shadow),
        sample("kervan_lockouts_total", {"rule": "t.lock"}),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [5, 2, 3, 1]
    assert sample("kervan_lockouts_active", {}) == 1
