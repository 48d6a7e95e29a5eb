"""The application: kervan's routes behind the edge (``service/edge.py``)."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from types import ModuleType

from starlette.applications import Starlette
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from core.clock import SYSTEM_CLOCK, Clock
from core.ratelimit import Decision
from native.edgepath import AsgiFront
from native.edgepath import asgi_front as make_asgi_front
from service import gc_policy, inline
from service.access_log import AccessLog
from service.clientip import resolve_client_ip
from service.edge import Edge
from service.errors import EXCEPTION_HANDLERS
from service.fast_routes import FastRequest
from service.features import setup_features
from service.logging import get_logger, request_id_var
from service.routes import ROUTE_MODULES
from service.routing import merge_same_path
from service.runtime import Runtime, build_runtime
from service.settings import Settings

log = get_logger("kervan.app")


def _route_modules() -> list[ModuleType]:
    return [importlib.import_module(name) for name in ROUTE_MODULES]


class KervanApp(Starlette):
    """Starlette, with every request passing the edge first (one composed pass instead of a
    middleware stack; hot GET paths answered there without the router)."""

    edge: Edge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self
        if self.middleware_stack is None:
            self.middleware_stack = self.build_middleware_stack()
        await self.edge(scope, receive, send, self.middleware_stack)


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    runtime: Runtime | None = None,
    freeze_heap: bool = False,
) -> KervanApp:
    """Build the app; the runtime (database, backends, features) starts in the lifespan.

    ``freeze_heap`` (a server process, not tests that build many apps) moves everything alive
    after start-up out of the garbage collector's view: the ~200k objects of the imports and the
    features are never garbage, and scanning them made every full collection a ~100 ms pause in
    request latency. It also applies the server's collector policy (``service/gc_policy.py``):
    full collections every ``gc_full_collect_seconds``, not whenever CPython decides.
    """
    # Same-path routes of different methods are routed as one, so a 405 lists every method.
    modules = _route_modules()
    routes: list[BaseRoute] = merge_same_path(
        [route for module in modules for route in module.routes]
    )

    edge = Edge(
        fast_routes=[route for module in modules for route in getattr(module, "fast_routes", ())],
        # HSTS only where kervan is reached over TLS.
        hsts=settings.env == "production",
        allowed_origins=settings.allowed_origins,
        trusted_proxies=settings.trusted_proxies,
        access_log=AccessLog(),
        own_cors=[path for module in modules for path in getattr(module, "own_cors_paths", ())],
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        rt = runtime or build_runtime(settings, clock or SYSTEM_CLOCK)
        app.state.runtime = rt
        try:
            await setup_features(rt)
            await rt.start()
            edge.bind(rt)
            async with AsyncExitStack() as heap:
                if freeze_heap:
                    await heap.enter_async_context(
                        gc_policy.steady_heap(settings.gc_full_collect_seconds)
                    )
                log.info(
                    "kervan started",
                    extra={"env": settings.env, "backends": rt.backends.kind, "db": rt.db.dialect},
                )
                yield
        finally:
            edge.unbind()
            await rt.close()
            edge.access_log.close()

    app = KervanApp(routes=routes, exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)
    app.edge = edge
    app.state.settings = settings
    return app


def asgi_front(app: KervanApp) -> AsgiFront:
    """granian's ASGI target over ``app``: the compiled front (``native/_edgepath.pyx``)
    answers the common case of the edge's fast routes and hands everything else to ``app``
    (a fast route's request it began, with the rate limit's decision, to the edge's steps)."""
    edge = app.edge

    async def carry_on(
        scope: Scope, receive: Receive, send: Send, decided: Decision | None
    ) -> None:
        scope["app"] = app
        if app.middleware_stack is None:
            app.middleware_stack = app.build_middleware_stack()
        await edge.carry_on(scope, receive, send, app.middleware_stack, decided)

    front = make_asgi_front(app, carry_on, request_id_var, FastRequest)
    inline.install()

    def bound(up: bool) -> None:
        settings = edge.front_settings() if up else None
        if settings is None:
            front.disable()
            return
        proxies = edge.trusted_proxies
        resolve: Callable[[Scope], str] | None = None
        if proxies:

            def resolve(scope: Scope) -> str:
                return resolve_client_ip(scope, proxies)

        front.configure(**settings, resolve_ip=resolve)

    edge.on_bind.append(bound)
    return front
