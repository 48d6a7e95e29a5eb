"""``/static/<file>``: kervan's front-end files (``service/static_assets.py``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from service.errors import error_response
from service.responses import etag_matches
from service.static_assets import IMMUTABLE, REVALIDATE, lookup


async def static_file(request: Request) -> Response:
    found = lookup(request.path_params["file"])
    if found is None:
        return error_response(404, "not_found", "no such static file")
    asset, hashed = found
    headers = {
        "Cache-Control": IMMUTABLE if hashed else REVALIDATE,
        "ETag": asset.etag,
        "Access-Control-Allow-Origin": "*",
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    if etag_matches(request.headers.get("if-none-match"), asset.etag):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


routes: list[BaseRoute] = [
    Route("/static/{file}", static_file, methods=["GET", "HEAD"], include_in_schema=False),
]
