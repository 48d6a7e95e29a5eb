"""CSV exports of a site's intents, sessions and Google Ads conversions over a range of its
local days, streamed (``service.tracking.export``).

For the site's owners and platform admins (editors and viewers: 403; a site the caller may not
see: 404). Every refusal comes before the first byte, as a JSON error; the export is audited
before it streams. The body has no Content-Length: it is produced while it is sent.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from service.db.types import from_timestamp
from service.endpoint import Endpoint, api
from service.runtime import get_runtime
from service.tracking.export import start_export
from service.tracking.export_kinds import EXPORT_KINDS, ExportKindName
from service.tracking.export_schemas import ExportRangeQuery, ExportSitePath
from service.tracking.people_guard import by_actor, request_actor
from service.validation import parse_path, parse_query

TAGS = ["tracking-export"]
RESPONSES = {
    401: "Sign in first: a person's session or admin credentials",
    403: "Only the site's owners (and platform admins) export its data",
    404: "No such site (or not one of yours)",
}
SUMMARIES: dict[ExportKindName, str] = {
    "intents": "Export the site's intents created in a range of its local days (CSV, streamed)",
    "sessions": "Export the site's sessions started in a range of its local days (CSV, streamed)",
    "conversions": "Export the site's Google Ads conversions of a range of its local days "
    "(CSV, streamed)",
}


def _exporter(kind: ExportKindName) -> Endpoint:
    @api(
        SUMMARIES[kind],
        path=ExportSitePath,
        bad_path=404,
        query=ExportRangeQuery,
        tags=TAGS,
        media_type="text/csv",
        responses=RESPONSES,
        limits=[("export", by_actor)],
    )
    async def export(request: Request) -> Response:
        # The caller first: who may not see the site learns nothing from how its request parses.
        actor = await request_actor(request)
        path = parse_path(request, ExportSitePath, bad_path=404)
        query = parse_query(request, ExportRangeQuery)
        runtime = get_runtime(request)
        exported = await start_export(
            runtime.db,
            actor,
            path.site_id,
            kind,
            query.first,
            query.last,
            now=from_timestamp(runtime.clock.now()),
        )
        return StreamingResponse(
            exported.chunks, media_type=exported.media_type, headers=exported.headers
        )

    export.__name__ = export.__qualname__ = f"export_{kind}"
    return export


routes: list[BaseRoute] = [
    Route(f"/t/sites/{{site_id}}/export/{kind}.csv", _exporter(kind), methods=["GET"])
    for kind in EXPORT_KINDS
]
