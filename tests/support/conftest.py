"""Fixtures of the support-desk tests: a served app with fast sweeps, admin tokens, and the
state backends as several processes hold them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

from service.backends import Backends, redis_backends
from service.settings import Settings
from service.support.roomlog import RoomLog
from service.support.stores import create_room_log
from tests.conftest import backends_url
from tests.support.wsclient import Desk

FAST = {
    "support_sweep_seconds": 0.05,
    "support_heartbeat_seconds": 5.0,
}


@pytest.fixture(params=["memory", "redis"])
def serve_desk(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> Callable[..., AbstractAsyncContextManager[Desk]]:
    """The app on a real port, with the embedded backends or the real Redis."""
    backend: dict[str, Any] = {}
    if request.param == "redis":
        backend = {
            "redis_url": request.getfixturevalue("redis_url"),
            "redis_namespace": request.getfixturevalue("redis_namespace"),
            # The worker's parts in the app's process too: its history writer reads the
            # Redis history feed (a scaled deployment runs them in `kervan worker`).
            "queue_embedded_worker": True,
        }

    @asynccontextmanager
    async def serve(**overrides: Any) -> AsyncIterator[Desk]:
        async with Desk.serve(make_settings(**{**FAST, **backend, **overrides})) as desk:
            yield desk

    return serve


@asynccontextmanager
async def as_processes(
    request: pytest.FixtureRequest, backends: Backends, count: int
) -> AsyncIterator[list[Backends]]:
    """``count`` backends as that many processes hold them: on Redis each its own (own
    connections) over ``backends``' namespace; in-process ``backends`` itself (one keyspace)."""
    if backends.kind != "redis":
        yield [backends] * count
        return
    url = backends_url(request, request.getfixturevalue("backend_kind"))
    made = [redis_backends(url, backends.namespace) for _ in range(count)]
    try:
        yield made
    finally:
        for each in made:
            await each.close()


@pytest.fixture
async def log(backends: Backends) -> AsyncIterator[RoomLog]:
    """A room log on the test's backends (memory or Redis), closed after the test."""
    made = create_room_log(backends)
    yield made
    await made.close()
