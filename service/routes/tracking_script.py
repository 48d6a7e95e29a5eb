"""``GET /t/{site_key}.js``: the tracker a customer site embeds (``service/tracking/script.py``)."""

from __future__ import annotations

from pydantic import BaseModel, Field, RootModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from service.endpoint import api
from service.errors import ApiError
from service.responses import etag_matches
from service.runtime import get_runtime
from service.tracking.script import (
    MEDIA_TYPE,
    SITE_KEY_PATTERN,
    cache_control,
    site_is_served,
    site_script,
)

UNKNOWN_SITE = "No live site with this key (unknown or deleted)"


class ScriptPath(BaseModel):
    site_key: str = Field(
        pattern=SITE_KEY_PATTERN,
        description="The site's public key (`st_...`); an unknown or deleted site's is 404",
        examples=["st_Ab3dEf6hIj9kLm2nOp5qRs8t"],
    )


class ScriptFile(RootModel[str]):
    """The script (JavaScript, the same bytes for every site)."""


@api(
    'The site script: embed with <script async src=".../t/{site_key}.js"></script>; it tracks '
    "only after the page grants analytics consent",
    path=ScriptPath,
    bad_path=404,
    response=ScriptFile,
    media_type="text/javascript",
    tags=["tracking"],
    responses={304: "Not modified (If-None-Match)", 404: UNKNOWN_SITE},
)
async def script(request: Request) -> Response:
    runtime = get_runtime(request)
    live = await site_is_served(runtime, str(request.path_params["site_key"]))
    if not live:
        raise ApiError(404, "unknown_site", UNKNOWN_SITE, headers={"Cache-Control": "no-store"})
    served = site_script()
    headers = {
        "Cache-Control": cache_control(runtime.settings.tracking_script_max_age_seconds),
        "ETag": served.etag,
    }
    if etag_matches(request.headers.get("if-none-match"), served.etag):
        return Response(status_code=304, headers=headers)
    return Response(served.body, media_type=MEDIA_TYPE, headers=headers)


routes: list[BaseRoute] = [Route("/t/{site_key}.js", script, methods=["GET"])]
