"""The audit log over HTTP: a site's records for its owners, every record for platform admins.

``GET /t/sites/{site_id}/audit``: a site that is not the caller's is 404 (as one that does not
exist), its editors and viewers are 403. ``GET /admin/audit``: platform admins, any filter.
Both newest first in keyset pages. ``GET /admin/audit/verify``: one chain's verification (the
``kervan audit verify`` command checks every chain). Each handler parses the request and makes
one call into ``service.audit``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from service.audit.queries import platform_audit, site_audit
from service.audit.schemas import (
    AdminAuditQuery,
    AuditPageOut,
    AuditSitePath,
    ChainReportOut,
    SiteAuditQuery,
    VerifyQuery,
    report_out,
)
from service.audit.verify import verify
from service.endpoint import api
from service.responses import json_response
from service.runtime import get_runtime
from service.tracking.people_guard import request_actor
from service.validation import parse_path, parse_query

NO_STORE = {"Cache-Control": "no-store"}


@api(
    "A site's audit log, newest first (owners and platform admins)",
    path=AuditSitePath,
    bad_path=404,
    query=SiteAuditQuery,
    response=AuditPageOut,
    tags=["audit", "tracking-sites"],
    responses={
        401: "Sign in first: a person's session or admin credentials",
        403: "Only the site's owners (and platform admins) read its audit log",
        404: "No such site (or not one of yours)",
    },
)
async def site_audit_route(request: Request) -> Response:
    actor = await request_actor(request)
    path = parse_path(request, AuditSitePath, bad_path=404)
    query = parse_query(request, SiteAuditQuery)
    page = await site_audit(get_runtime(request).db, actor, path.site_id, query.to_filter())
    return json_response(page, headers=NO_STORE)


@api(
    "Every audit record, newest first: by site (or the platform's), action, subject, actor, "
    "time (admin)",
    query=AdminAuditQuery,
    response=AuditPageOut,
    tags=["audit", "admin"],
    admin=True,
)
async def admin_audit_route(request: Request) -> Response:
    query = parse_query(request, AdminAuditQuery)
    page = await platform_audit(get_runtime(request).db, query.to_filter())
    return json_response(page, headers=NO_STORE)


@api(
    "Verify one audit chain (a site's or the platform's): its first broken link, if any (admin)",
    query=VerifyQuery,
    response=ChainReportOut,
    tags=["audit", "admin"],
    admin=True,
)
async def admin_verify_route(request: Request) -> Response:
    query = parse_query(request, VerifyQuery)
    db = get_runtime(request).db
    [report] = await verify(db, site_id=query.site_id, platform=query.site_id is None)
    return json_response(report_out(report), headers=NO_STORE)


routes: list[BaseRoute] = [
    Route("/t/sites/{site_id}/audit", site_audit_route, methods=["GET"]),
    Route("/admin/audit", admin_audit_route, methods=["GET"]),
    Route("/admin/audit/verify", admin_verify_route, methods=["GET"]),
]
