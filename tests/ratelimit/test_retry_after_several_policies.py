"""When several policies refuse one request, ``Retry-After`` is the LONGEST of their waits.

A client that retries after the shortest wait is refused again by the slower policy, so the
answer must name the longest; each test below fails if ``max`` became ``min`` (in
``service/ratelimit/headers.py`` for 429, in ``service/ratelimit/http.py::refusal`` for 503).
Both orders of the policies are tried, so "the first" or "the last" does not pass either.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import TypeVar

import httpx
import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.clock import ManualClock
from core.ratelimit import Catalog, Decision, build_catalog
from service.backends.redis import create_redis_client
from service.ratelimit import RateLimiter, by_client_ip, rate_limited
from service.ratelimit.headers import rate_limit_headers
from service.ratelimit.http import refusal
from service.ratelimit.memory import MemoryGcraStore
from service.ratelimit.redis_store import RedisGcraStore
from service.responses import json_response

POLICIES = {
    "w.minute": "1/minute burst 1",  # the second request waits 60 s
    "w.hour": "1/hour burst 1",  # the second request waits 3600 s
    # Backend down: a refusal asks for min(interval, 5 s): 1 s here (0.2 s rounded up) ...
    "w.fast.closed": "5/second fail closed",
    # ... and 5 s here (the interval is 12 minutes).
    "w.slow.closed": "5/hour fail closed",
}
T = TypeVar("T")
ORDERS = pytest.mark.parametrize("order", ["short-first", "long-first"])


@pytest.fixture
def catalog() -> Catalog:
    return build_catalog(POLICIES, {})


def app_with(limiter: RateLimiter, *policies: str) -> Starlette:
    @rate_limited(*((name, by_client_ip) for name in policies))
    async def endpoint(request: Request) -> Response:
        return json_response({"ok": True})

    app = Starlette(routes=[Route("/x", endpoint, methods=["GET"])])
    app.state.runtime = SimpleNamespace(ratelimiter=limiter)
    return app


def ordered(order: str, short: T, long: T) -> tuple[T, T]:
    return (short, long) if order == "short-first" else (long, short)


async def get_twice(app: Starlette) -> tuple[httpx.Response, httpx.Response]:
    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get("/x"), await client.get("/x")


@ORDERS
async def test_429_retry_after_is_the_longest_refusing_wait(catalog: Catalog, order: str) -> None:
    limiter = RateLimiter(catalog, MemoryGcraStore(ManualClock(), 1000))
    policies = ordered(order, "w.minute", "w.hour")
    first, second = await get_twice(app_with(limiter, *policies))
    assert first.status_code == 200, first.text
    assert second.status_code == 429
    # Both policies refuse the second request: one asks for 60 s, the other for 3600 s.
    assert second.headers["Retry-After"] == "3600"
    error = second.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["details"] == {"policies": list(policies), "retry_after": 3600}


@pytest.fixture
async def dead_redis() -> AsyncIterator[Redis]:
    # A real client to a port nothing listens on: the genuine connection-refused path.
    made = create_redis_client("redis://127.0.0.1:1/0", max_connections=2, timeout=0.5)
    yield made
    await made.aclose()


@ORDERS
async def test_503_retry_after_is_the_longest_degraded_wait(
    catalog: Catalog, dead_redis: Redis, order: str
) -> None:
    limiter = RateLimiter(catalog, RedisGcraStore(dead_redis, "dead"))
    policies = ordered(order, "w.fast.closed", "w.slow.closed")
    refused, _ = await get_twice(app_with(limiter, *policies))
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "5"
    error = refused.json()["error"]
    assert error["code"] == "rate_limiter_unavailable"
    assert error["details"] == {"policies": list(policies)}


def _refusing(catalog: Catalog, name: str, retry_seconds: float) -> Decision:
    micros = int(retry_seconds * 1_000_000)
    return Decision(catalog.policy(name), False, 0, micros, micros)


@ORDERS
def test_headers_and_refusal_take_the_maximum(catalog: Catalog, order: str) -> None:
    """The same rule one level down, with a third policy that allows (it must not count)."""
    allowed = Decision(catalog.policy("w.fast.closed"), True, 3, 0, 200_000)
    short = _refusing(catalog, "w.minute", 59.2)  # rounds up to 60
    long = _refusing(catalog, "w.hour", 3599.5)  # rounds up to 3600
    decisions = [allowed, *ordered(order, short, long)]
    assert rate_limit_headers(decisions)["Retry-After"] == "3600"
    response = refusal(decisions)
    assert response is not None and response.status_code == 429
    assert response.headers["Retry-After"] == "3600"
