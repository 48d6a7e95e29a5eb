"""The Starlette application factory."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from core.clock import SYSTEM_CLOCK, Clock
from service.errors import EXCEPTION_HANDLERS
from service.features import setup_features
from service.logging import get_logger
from service.middleware.cors import EnvelopeCORSMiddleware
from service.middleware.request_context import RequestContextMiddleware
from service.middleware.security import SecurityHeadersMiddleware
from service.ratelimit import RateLimitMiddleware
from service.routes import ROUTE_MODULES
from service.routing import merge_same_path
from service.runtime import Runtime, build_runtime
from service.settings import Settings

log = get_logger("kervan.app")


def _route_modules() -> list[ModuleType]:
    return [importlib.import_module(name) for name in ROUTE_MODULES]


def create_app(
    settings: Settings, *, clock: Clock | None = None, runtime: Runtime | None = None
) -> Starlette:
    """Build the app; the runtime (database, backends, features) starts in the lifespan."""
    # Same-path routes of different methods are routed as one, so a 405 lists every method.
    routes: list[BaseRoute] = merge_same_path(
        [route for module in _route_modules() for route in module.routes]
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        rt = runtime or build_runtime(settings, clock or SYSTEM_CLOCK)
        app.state.runtime = rt
        try:
            await setup_features(rt)
            await rt.start()
            log.info(
                "kervan started",
                extra={"env": settings.env, "backends": rt.backends.kind, "db": rt.db.dialect},
            )
            yield
        finally:
            await rt.close()

    middleware = [
        # Security headers outermost so that even the last-resort 500 carries them.
        Middleware(SecurityHeadersMiddleware, hsts=settings.env == "production"),
        Middleware(RequestContextMiddleware, trusted_proxies=settings.trusted_proxies),
        Middleware(
            EnvelopeCORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "X-Request-ID",
                "If-None-Match",
                "X-Consent-Proof",
            ],
            expose_headers=["X-Request-ID", "ETag", "RateLimit", "RateLimit-Policy", "Retry-After"],
            allow_credentials=True,
            max_age=600,
        ),
        # Inside the request context, which resolves the client IP the policy is keyed on.
        Middleware(RateLimitMiddleware),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app
