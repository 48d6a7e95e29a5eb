"""Redis-only behaviour: the server's clock, key expiry, NOSCRIPT recovery, unreachable server.

Tests that pause or kill the server's clients use a private redis-server, never the shared one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from core.errors import StateBackendError
from core.ratelimit import Catalog
from service.backends.redis import create_redis_client
from service.metrics import REGISTRY
from service.ratelimit.limiter import RateLimiter
from service.ratelimit.redis_store import RedisGcraStore, RedisLockoutStore

pytestmark = pytest.mark.redis


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    made = create_redis_client(redis_url, max_connections=8, timeout=2.0)
    yield made
    await made.aclose()


async def test_server_clock_and_key_expiry(
    client: Redis, redis_namespace: str, catalog: Catalog
) -> None:
    limiter = RateLimiter(catalog, RedisGcraStore(client, redis_namespace))
    first = await limiter.check("t.slow", "ip")
    second = await limiter.check("t.slow", "ip")
    assert first.allowed and first.remaining == 19 and second.remaining == 18
    # Two units taken: full again after two intervals, less the server time between the calls
    # (bounds generous enough for a loaded machine).
    assert 600_000 < second.reset_after <= 1_200_000
    ttl = await client.pttl(f"{redis_namespace}:rl:gcra:t.slow:ip")
    assert 0 < ttl <= 1_200  # expires when the bucket is full again: idle keys vanish


async def test_script_reloaded_after_flush(
    client: Redis, redis_namespace: str, catalog: Catalog
) -> None:
    store = RedisGcraStore(client, redis_namespace)
    limiter = RateLimiter(catalog, store)
    await limiter.check("t.tight", "k")
    await client.script_flush()
    decision = await limiter.check("t.tight", "k")
    assert decision.allowed and decision.remaining == 1 and not decision.degraded


@pytest.fixture
async def private_client(private_redis_url: str) -> AsyncIterator[Redis]:
    made = create_redis_client(private_redis_url, max_connections=8, timeout=2.0)
    yield made
    await made.aclose()


# The next two tests act on every client of the server (CLIENT PAUSE ... ALL, CLIENT KILL): on
# the shared server they would stall or cut off every other run using it, so each runs against
# a redis-server of this module's own (tests/conftest.py::private_redis_url).


async def test_timed_out_call_never_leaves_a_stale_reply(
    private_redis_url: str, catalog: Catalog
) -> None:
    """A call cut off by its deadline can still be answered later: the next calls must get
    their own replies, not that late one. Redis is paused past the deadline to cut one."""
    client = create_redis_client(private_redis_url, max_connections=4, timeout=0.2)
    admin = create_redis_client(private_redis_url, max_connections=2, timeout=5.0)
    limiter = RateLimiter(catalog, RedisGcraStore(client, "pause"))
    try:
        assert (await limiter.check("t.slow", "a")).remaining == 19
        await admin.execute_command("CLIENT", "PAUSE", 700, "ALL")
        cut = await limiter.check("t.slow", "a")
        assert cut.degraded and cut.allowed  # t.slow fails open
        await asyncio.sleep(1.0)  # the pause is over
        fresh = [await limiter.check("t.slow", "b") for _ in range(2)]
        assert [(d.remaining, d.degraded) for d in fresh] == [(19, False), (18, False)]
        assert 0 < fresh[0].reset_after <= 600_000
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")
        await limiter.stop()
        await client.aclose()
        await admin.aclose()


async def test_kept_connection_closed_by_the_server_is_replaced(
    private_client: Redis, private_redis_url: str, catalog: Catalog
) -> None:
    admin = create_redis_client(private_redis_url, max_connections=2, timeout=5.0)
    limiter = RateLimiter(catalog, RedisGcraStore(private_client, "kill"))
    try:
        assert (await limiter.check("t.slow", "a")).remaining == 19
        # Closes every other client's connection, the limiter's kept one included.
        assert await admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        again = await limiter.check("t.slow", "a")
        assert (again.remaining, again.degraded) == (18, False)
    finally:
        await limiter.stop()
        await admin.aclose()


async def test_concurrent_checks_share_the_call_slots(
    client: Redis, redis_namespace: str, catalog: Catalog
) -> None:
    store = RedisGcraStore(client, redis_namespace, max_batch=10, max_inflight=3)
    limiter = RateLimiter(catalog, store)
    try:
        decisions = await asyncio.gather(*(limiter.check("t.slow", f"k{i}") for i in range(50)))
        assert all(d.allowed and d.remaining == 19 for d in decisions)
        # One call at once for the first, the rest in shares of at most 10: at least 6 calls,
        # and far fewer than one per check.
        assert 6 <= store.round_trips <= 12
    finally:
        await limiter.stop()


@pytest.fixture
async def dead_client() -> AsyncIterator[Redis]:
    # A real client to a port nothing listens on: the genuine connection-refused path.
    made = create_redis_client("redis://127.0.0.1:1/0", max_connections=2, timeout=0.5)
    yield made
    await made.aclose()


async def test_unreachable_redis_follows_each_policy_failure_mode(
    dead_client: Redis, catalog: Catalog
) -> None:
    limiter = RateLimiter(catalog, RedisGcraStore(dead_client, "dead"))
    labels = {"policy": "t.closed", "failure_mode": "closed"}
    before = REGISTRY.get_sample_value("kervan_ratelimit_backend_errors_total", labels) or 0
    opened = await limiter.check("t.slow", "ip")
    closed = await limiter.check("t.closed", "ip")
    assert opened.allowed and opened.degraded and not opened.refused
    assert not closed.allowed and closed.degraded and closed.refused
    assert closed.retry_after_seconds == 1
    after = REGISTRY.get_sample_value("kervan_ratelimit_backend_errors_total", labels)
    assert after == before + 1


async def test_unreachable_redis_concurrent_checks_all_answer(
    dead_client: Redis, catalog: Catalog
) -> None:
    limiter = RateLimiter(catalog, RedisGcraStore(dead_client, "dead"))
    decisions = await asyncio.wait_for(
        asyncio.gather(*(limiter.check("t.closed", f"k{i}") for i in range(20))), timeout=30
    )
    assert all(d.degraded and d.refused for d in decisions)


async def test_unreachable_redis_lockouts_fail_closed(dead_client: Redis, catalog: Catalog) -> None:
    store = RedisLockoutStore(dead_client, "dead")
    with pytest.raises(StateBackendError):
        await store.failure(catalog.lockout("t.lock"), "k")
    with pytest.raises(StateBackendError):
        await store.state(catalog.lockout("t.lock"), "k")
