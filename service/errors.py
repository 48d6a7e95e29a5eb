"""The one error envelope: ``{"error": {"code", "message", "details"}}`` for every 4xx and 5xx."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from core.errors import (
    BackendUnavailable,
    Conflict,
    Forbidden,
    KervanError,
    NotFound,
    ValidationFailed,
)
from service.backends.health_log import outage_logged
from service.logging import get_logger
from service.responses import json_response

log = get_logger("kervan.errors")


class ApiError(Exception):
    """Raise from a handler to answer with the error envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = {"error": {"code": code, "message": message, "details": details}}
    return json_response(body, status=status, headers=headers)


_KERVAN_STATUS: list[tuple[type[KervanError], int]] = [
    (ValidationFailed, 422),
    (NotFound, 404),
    (Conflict, 409),
    (Forbidden, 403),
    (BackendUnavailable, 503),
]

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    503: "unavailable",
}


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def kervan_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, KervanError)
    for kind, status in _KERVAN_STATUS:
        if isinstance(exc, kind):
            details = exc.details
            if isinstance(exc, BackendUnavailable):
                if not outage_logged(exc, f"{request.method} {_route(request)}"):
                    log.warning("backend unavailable: %s", exc.message)
                # Driver messages can carry hosts and credentials; name only the component.
                return error_response(
                    503,
                    exc.code,
                    f"{exc.component} is unavailable, try again later",
                    {"component": exc.component},
                    {"Retry-After": "5"},
                )
            if isinstance(exc, Conflict) and isinstance(details, dict) and "reason" in details:
                details = None
            return error_response(status, exc.code, exc.message, details)
    return await unhandled_error_handler(request, exc)


def _route(request: Request) -> str:
    """The matched route's template (a path a client chose could be anything)."""
    template = getattr(request.scope.get("route"), "path", None)
    return template if isinstance(template, str) else "<unmatched>"


async def client_disconnect_handler(request: Request, exc: Exception) -> Response:
    # The server ends a body with a disconnect when the client left before its end or its
    # chunked framing was broken: the client's doing, answered 400 (read only in the second
    # case), never a 500 with a traceback. The edge closes the connection after it.
    return error_response(
        400, "incomplete_body", "the request body ended early or its framing is malformed"
    )


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), None, exc.headers)


async def unhandled_error_handler(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: api_error_handler,
    KervanError: kervan_error_handler,
    HTTPException: http_exception_handler,
    ClientDisconnect: client_disconnect_handler,
    Exception: unhandled_error_handler,
}
