"""Request id, client IP and the access log line for every HTTP request."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.clientip import _STATE_KEY, resolve_client_ip
from service.logging import get_logger, request_id_var
from service.metrics import HTTP_IN_FLIGHT, HTTP_LATENCY, HTTP_REQUESTS
from service.settings_types import Network

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
access_log = get_logger("kervan.access")
log = get_logger("kervan.errors")

_INTERNAL_ERROR = orjson.dumps(
    {"error": {"code": "internal_error", "message": "internal server error", "details": None}}
)


async def _send_internal_error(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_INTERNAL_ERROR)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _INTERNAL_ERROR})


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    # Unmatched paths are folded into one label so scanners cannot explode the label space.
    return path if isinstance(path, str) else "<unmatched>"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, trusted_proxies: Sequence[Network]) -> None:
        self.app = app
        self.trusted_proxies = list(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = (
            incoming if incoming and _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        )
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})
        scope["state"][_STATE_KEY] = resolve_client_ip(scope, self.trusted_proxies)
        scope["state"]["request_id"] = request_id
        if scope["type"] == "websocket":
            try:
                await self.app(scope, receive, send)
            finally:
                request_id_var.reset(token)
            return

        started = time.perf_counter()
        status = 500
        header_value = request_id.encode()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", header_value)]
            await send(message)

        response_started = False

        async def send_tracking(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send_with_id(message)

        HTTP_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_tracking)
        except Exception as exc:
            # Caught here, inside the request context, so the log line carries the request id
            # and the client gets the envelope with its X-Request-ID instead of a bare 500.
            log.exception("unhandled error on %s %s", scope["method"], scope["path"], exc_info=exc)
            if not response_started:
                await _send_internal_error(send_tracking)
        finally:
            HTTP_IN_FLIGHT.dec()
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            method = scope["method"]
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(elapsed)
            access_log.info(
                "%s %s %d",
                method,
                scope["path"],
                status,
                extra={
                    "method": method,
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "client_ip": scope["state"][_STATE_KEY],
                },
            )
            request_id_var.reset(token)
