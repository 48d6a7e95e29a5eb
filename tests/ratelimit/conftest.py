"""Stores under test: the same contract, in-process and on the real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from core.clock import ManualClock
from core.ratelimit import Catalog, build_catalog
from service.backends import Backends
from service.ratelimit.limiter import RateLimiter
from service.ratelimit.lockouts import Lockouts
from service.ratelimit.memory import MemoryGcraStore, MemoryLockoutStore
from service.ratelimit.redis_store import RedisGcraStore, RedisLockoutStore

TEST_POLICIES = {
    "t.tight": "3/second burst 3",
    "t.slow": "100/minute burst 20",
    "t.odd": "7/10 seconds burst 4",
    "t.closed": "5/second fail closed",
    "t.shadow": "2/minute burst 2 shadow",
}
TEST_LOCKOUTS = {"t.lock": "3 failures in 1 minute lock 10 minutes, 1 hour forget after 2 hours"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_700_000_000.0)


@pytest.fixture
def catalog() -> Catalog:
    return build_catalog(TEST_POLICIES, TEST_LOCKOUTS)


class AuditLog:
    def __init__(self) -> None:
        self.entries: list[tuple[str, str, str, dict[str, Any]]] = []

    async def __call__(
        self, actor: str, action: str, subject: str, details: dict[str, Any]
    ) -> None:
        self.entries.append((actor, action, subject, details))


@pytest.fixture
def audit_log() -> AuditLog:
    return AuditLog()


@pytest.fixture
async def limiter(
    backends: Backends, clock: ManualClock, catalog: Catalog, audit_log: AuditLog
) -> AsyncIterator[RateLimiter]:
    if backends.redis is None:
        made = RateLimiter(catalog, MemoryGcraStore(clock, 100_000))
        made.lockouts = Lockouts(catalog, MemoryLockoutStore(clock, 10_000), audit_log)
    else:
        made = RateLimiter(catalog, RedisGcraStore(backends.redis, backends.namespace, clock=clock))
        made.lockouts = Lockouts(
            catalog, RedisLockoutStore(backends.redis, backends.namespace, clock=clock), audit_log
        )
    await made.start()
    yield made
    await made.stop()
