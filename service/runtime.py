"""What a running kervan process holds: settings, clock, database, backends and components.

Built once in the app's lifespan (or by ``kervan worker``) and reached from handlers with
``get_runtime(request)``. Feature modules attach their long-lived parts here instead of using
module globals, so tests can run several isolated apps in one process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.requests import HTTPConnection

from core.clock import Clock
from service.backends import Backends
from service.db import Database
from service.logging import get_logger
from service.settings import Settings

ReadinessCheck = Callable[[], Awaitable[None]]
ReadinessInfo = Callable[[], Awaitable[Any]]
COMPONENT_STOP_TIMEOUT_SECONDS = 10.0
log = get_logger("kervan.runtime")


class Component(Protocol):
    """Started in order and stopped in reverse; a component that needs longer than
    ``COMPONENT_STOP_TIMEOUT_SECONDS`` to stop (the queue worker's shutdown grace) says so
    with a ``stop_timeout`` attribute."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    db: Database
    backends: Backends
    components: list[Component] = field(default_factory=list)
    readiness_checks: dict[str, ReadinessCheck] = field(default_factory=dict)
    #: Shown by /ready without deciding it (e.g. circuit breaker states).
    readiness_info: dict[str, ReadinessInfo] = field(default_factory=dict)
    #: The outbound job queue (issue 6) once its module's setup ran.
    queue: Any = None
    #: The rate-limiting facility (issue 3) once its module's setup ran.
    ratelimiter: Any = None
    #: Feature-owned objects keyed by feature name, for what has no slot above.
    extras: dict[str, Any] = field(default_factory=dict)
    _started: list[Component] = field(default_factory=list)

    def add_component(self, component: Component) -> None:
        self.components.append(component)

    def add_readiness_check(self, name: str, check: ReadinessCheck) -> None:
        self.readiness_checks[name] = check

    def add_readiness_info(self, name: str, info: ReadinessInfo) -> None:
        self.readiness_info[name] = info

    async def start(self) -> None:
        for component in self.components:
            await component.start()
            self._started.append(component)

    async def stop(self, timeout: float = COMPONENT_STOP_TIMEOUT_SECONDS) -> None:
        while self._started:
            component = self._started.pop()
            try:
                # A component that does not stop in time must not keep the process (and a
                # rolling deploy) hanging; it is reported and the rest still shut down.
                limit = max(timeout, float(getattr(component, "stop_timeout", 0.0)))
                await asyncio.wait_for(component.stop(), limit)
            except TimeoutError:
                log.error(
                    "component did not stop in time",
                    extra={"component": type(component).__name__, "timeout_s": limit},
                )

    async def close(self) -> None:
        await self.stop()
        await self.backends.close()
        await self.db.dispose()


def build_runtime(settings: Settings, clock: Clock) -> Runtime:
    from service.backends import create_backends

    return Runtime(
        settings=settings,
        clock=clock,
        db=Database(settings.database_url, pool_size=settings.database_pool_size),
        backends=create_backends(
            settings.redis_url,
            settings.redis_namespace,
            max_connections=settings.redis_pool_size,
            timeout=settings.redis_timeout_seconds,
        ),
    )


def get_runtime(conn: HTTPConnection) -> Runtime:
    runtime: Runtime = conn.app.state.runtime
    return runtime
