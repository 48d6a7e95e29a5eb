"""Liveness, readiness and the Prometheus endpoint."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core.errors import KervanError
from service.clientip import client_ip
from service.endpoint import api
from service.errors import ApiError
from service.fast_routes import FastReply, FastRequest, FastRoute
from service.metrics import BACKEND_ERRORS, READY, render_metrics
from service.responses import json_response
from service.runtime import Runtime, get_runtime

CHECK_TIMEOUT_SECONDS = 2.0


class HealthOut(BaseModel):
    status: str


class ReadyOut(BaseModel):
    status: str
    components: dict[str, str]
    info: dict[str, Any] = {}


_HEALTHY = b'{"status":"ok"}'
_HEALTH_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"content-length", str(len(_HEALTHY)).encode()),
    (b"content-type", b"application/json"),
]


@api("Process liveness", response=HealthOut, tags=["operations"])
async def health(request: Request) -> Response:
    return json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})


_HEALTH_REPLY = FastReply(200, _HEALTH_HEADERS, _HEALTHY)


def fast_health(request: FastRequest) -> FastReply:
    """The same answer as ``health``, ahead of the router: probes and load balancers poll it.
    One reply object for every request (replies are immutable)."""
    return _HEALTH_REPLY


fast_routes = [FastRoute("/health", fast_health)]


async def _run_check(name: str, check: object) -> tuple[str, str | None]:
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)  # type: ignore[operator]
    except TimeoutError:
        return name, f"no answer within {CHECK_TIMEOUT_SECONDS:.0f}s"
    except KervanError as exc:
        return name, exc.message
    except Exception as exc:  # a readiness probe reports every failure, it never raises
        return name, str(exc) or type(exc).__name__
    return name, None


def readiness_checks(runtime: Runtime) -> dict[str, object]:
    checks: dict[str, object] = {"database": runtime.db.ping}
    if runtime.backends.redis is not None:
        checks["redis"] = runtime.backends.ping
    checks.update(runtime.readiness_checks)
    return checks


@api(
    "Readiness: database, Redis and worker heartbeat",
    response=ReadyOut,
    tags=["operations"],
    responses={503: "A component is not ready"},
)
async def ready(request: Request) -> Response:
    runtime = get_runtime(request)
    results = await asyncio.gather(
        *(_run_check(name, check) for name, check in readiness_checks(runtime).items())
    )
    components = {name: ("ok" if error is None else error) for name, error in results}
    failing = {name: error for name, error in results if error is not None}
    for name, error in results:
        READY.labels(name).set(0 if error else 1)
        if error and name in ("database", "redis"):
            BACKEND_ERRORS.labels(name).inc()
    info = await _collect_info(runtime)
    headers = {"Cache-Control": "no-store"}
    if failing:
        return json_response(
            {
                "error": {
                    "code": "not_ready",
                    "message": "not ready: " + ", ".join(sorted(failing)),
                    "details": {"components": components, "info": info},
                }
            },
            status=503,
            headers=headers,
        )
    return json_response(
        {"status": "ready", "components": components, "info": info}, headers=headers
    )


async def _collect_info(runtime: Runtime) -> dict[str, Any]:
    info: dict[str, Any] = {}
    for name, provider in runtime.readiness_info.items():
        try:
            info[name] = await asyncio.wait_for(provider(), CHECK_TIMEOUT_SECONDS)
        except Exception as exc:  # information only: it never decides readiness
            info[name] = {"error": str(exc) or type(exc).__name__}
    return info


def _metrics_allowed(request: Request) -> bool:
    settings = get_runtime(request).settings
    token = settings.metrics_token
    if token:
        auth = request.headers.get("authorization", "")
        scheme, _, presented = auth.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(presented.encode(), token.encode()):
            return True
    try:
        addr = ipaddress.ip_address(client_ip(request))
    except ValueError:
        return False
    return any(addr in net for net in settings.metrics_allow)


@api(
    "Prometheus metrics (text exposition format)",
    tags=["operations"],
    media_type="text/plain",
    responses={403: "Neither from an allowed network nor with the metrics token"},
)
async def metrics(request: Request) -> Response:
    if not _metrics_allowed(request):
        raise ApiError(403, "forbidden", "metrics are not available to this client")
    return Response(
        render_metrics(),
        media_type="text/plain; version=0.0.4; charset=utf-8",
        headers={"Cache-Control": "no-store"},
    )


routes: list[BaseRoute] = [
    Route("/health", health, methods=["GET"]),
    Route("/ready", ready, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
