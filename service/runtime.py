"""What a running kervan process holds: settings, clock, database, backends and components.

Built once in the app's lifespan (or by ``kervan worker``) and reached from handlers with
``get_runtime(request)``. Each feature's ``setup(runtime)`` (``service/features.py``) attaches
its long-lived parts here instead of using module globals, so tests can run several isolated
apps in one process: the queue and the rate limiter as typed attributes, every other facility
in a registry keyed by its class (``runtime.facility(ImagesFacility)``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from starlette.requests import HTTPConnection

from core.clock import Clock
from service.backends import Backends
from service.db import Database
from service.fast_routes import FastRoute
from service.logging import get_logger
from service.queue.handlers import HandlerRegistry
from service.settings import Settings

if TYPE_CHECKING:
    from service.queue.base import JobQueue
    from service.queue.worker import Worker
    from service.ratelimit.limiter import RateLimiter

T = TypeVar("T")
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
    #: The outbound job queue, once the queue feature's setup ran.
    queue: JobQueue | None = None
    #: The rate-limiting facility, once its feature's setup ran.
    ratelimiter: RateLimiter | None = None
    #: Which coroutine runs the jobs of which queue; features register in their setup.
    handlers: HandlerRegistry = field(default_factory=HandlerRegistry)
    #: Run a queue worker in this process whatever the embedded setting says (``kervan
    #: worker``), limited to these queues when given.
    worker_wanted: bool = False
    worker_queues: list[str] | None = None
    #: The queue worker of this process, when one runs here.
    worker: Worker | None = None
    #: Hot GET paths features answer from memory, ahead of the router (by path).
    fast_routes: dict[str, FastRoute] = field(default_factory=dict)
    _facilities: dict[type[Any], Any] = field(default_factory=dict)
    _started: list[Component] = field(default_factory=list)

    @property
    def runs_worker(self) -> bool:
        """Whether this process runs the worker's parts (the queue worker, the support
        history writer): ``kervan worker``, or an API process with the embedded worker."""
        if self.worker_wanted:
            return True
        embedded = self.settings.queue_embedded_worker
        return embedded if embedded is not None else self.settings.embedded

    def provide(self, kind: type[T], facility: T) -> T:
        """Make ``facility`` the one ``kind`` of this runtime (a feature's setup calls this)."""
        if kind in self._facilities:
            raise RuntimeError(f"{kind.__name__} is already provided")
        self._facilities[kind] = facility
        return facility

    def facility(self, kind: type[T]) -> T:
        """The ``kind`` a feature's setup provided; a missing one is a wiring error."""
        try:
            found: T = self._facilities[kind]
        except KeyError:
            raise LookupError(f"no {kind.__name__}: its feature was not set up") from None
        return found

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
            cluster=settings.redis_cluster,
        ),
    )


def get_runtime(conn: HTTPConnection) -> Runtime:
    runtime: Runtime = conn.app.state.runtime
    return runtime
