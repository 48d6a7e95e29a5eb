"""Starlette's CORS middleware, with refused preflights answered in the error envelope."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from service.errors import error_response

_PREFIX = "Disallowed CORS "
# The envelope brings its own; the rest (Vary, Allow-Methods, Max-Age...) are kept.
_BODY_HEADERS = frozenset({"content-type", "content-length"})


class EnvelopeCORSMiddleware(CORSMiddleware):
    """Starlette refuses a preflight with a text/plain 400; ours names what was refused."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        text = bytes(response.body).decode("utf-8", "replace")
        refused = text.removeprefix(_PREFIX).split(", ") if text.startswith(_PREFIX) else []
        headers = {
            key: value for key, value in response.headers.items() if key not in _BODY_HEADERS
        }
        return error_response(
            response.status_code,
            "cors_rejected",
            f"the cross-origin request was refused: {', '.join(refused) or text}",
            {"refused": refused},
            headers,
        )
