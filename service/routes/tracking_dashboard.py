"""A site's dashboard API: KPIs, timeline, breakdowns, the intent ledger and one session.

For a member of the site (any role) or a platform admin; a site, intent or session the caller
may not see is 404. Each handler resolves the caller, parses the request, and makes one call
into ``service.tracking.dashboard*`` on a read connection.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from service.db.types import from_timestamp
from service.endpoint import api
from service.responses import json_response
from service.runtime import get_runtime
from service.tracking.dashboard import (
    Reader,
    SiteView,
    breakdown,
    open_bounds,
    period_of,
    read_site,
    timeline,
)
from service.tracking.dashboard_cache import kpis_reader
from service.tracking.dashboard_ledger import LedgerFilter, ledger_page, one_intent
from service.tracking.dashboard_schemas import (
    DashboardBreakdownOut,
    DashboardBreakdownQuery,
    DashboardKpisOut,
    DashboardRangeQuery,
    DashboardSitePath,
    DashboardTimelineOut,
    DashboardTimelineQuery,
    IntentLedgerPageOut,
    IntentLedgerQuery,
    LedgerIntentOut,
    LedgerIntentPath,
    TrackedSessionOut,
    TrackedSessionPath,
)
from service.tracking.dashboard_sessions import session_timeline
from service.tracking.people_guard import request_actor
from service.validation import parse_path, parse_query

P = TypeVar("P", bound=BaseModel)
TAGS = ["tracking-dashboard"]
UNAUTHORIZED = {401: "Sign in first: a person's session or admin credentials"}
NO_SITE = {**UNAUTHORIZED, 404: "No such site (or not one of yours)"}
NO_CURSOR = {400: "The cursor is not one this API issued"}


async def _viewing(request: Request, site_id: int, read: Reader) -> Response:
    """Resolve the caller's view of the site, then ``read`` on the same connection."""
    runtime = get_runtime(request)
    actor = await request_actor(request)
    found = await read_site(
        runtime.db,
        actor,
        site_id,
        now=from_timestamp(runtime.clock.now()),
        retention=runtime.settings.tracking_retention_months,
        read=read,
    )
    return json_response(found)


async def _parse(request: Request, path: type[P]) -> P:
    # The caller first: who may not see the site learns nothing from how its request is parsed.
    await request_actor(request)
    return parse_path(request, path, bad_path=404)


@api(
    "A site's KPIs over a range of its local days",
    path=DashboardSitePath,
    bad_path=404,
    query=DashboardRangeQuery,
    response=DashboardKpisOut,
    tags=TAGS,
    responses=NO_SITE,
)
async def get_kpis(request: Request) -> Response:
    path = await _parse(request, DashboardSitePath)
    query = parse_query(request, DashboardRangeQuery)
    reader = kpis_reader(get_runtime(request), query.first, query.last)
    return await _viewing(request, path.site_id, reader)


@api(
    "A site's timeline by local hour or day",
    path=DashboardSitePath,
    bad_path=404,
    query=DashboardTimelineQuery,
    response=DashboardTimelineOut,
    tags=TAGS,
    responses=NO_SITE,
)
async def get_timeline(request: Request) -> Response:
    path = await _parse(request, DashboardSitePath)
    query = parse_query(request, DashboardTimelineQuery)
    return await _viewing(
        request,
        path.site_id,
        lambda conn, view: timeline(
            conn,
            view,
            period_of(view, query.first, query.last),
            query.bucket,
            ads_only=query.ads_only,
        ),
    )


@api(
    "A site's top sources, devices, landing pages or countries",
    path=DashboardSitePath,
    bad_path=404,
    query=DashboardBreakdownQuery,
    response=DashboardBreakdownOut,
    tags=TAGS,
    responses=NO_SITE,
)
async def get_breakdown(request: Request) -> Response:
    path = await _parse(request, DashboardSitePath)
    query = parse_query(request, DashboardBreakdownQuery)
    return await _viewing(
        request,
        path.site_id,
        lambda conn, view: breakdown(
            conn, view, period_of(view, query.first, query.last), query.dimension, query.limit
        ),
    )


@api(
    "A site's intents, newest first (cursor pages)",
    path=DashboardSitePath,
    bad_path=404,
    query=IntentLedgerQuery,
    response=IntentLedgerPageOut,
    tags=TAGS,
    responses={**NO_SITE, **NO_CURSOR},
)
async def list_intents(request: Request) -> Response:
    path = await _parse(request, DashboardSitePath)
    query = parse_query(request, IntentLedgerQuery)

    async def read(conn: Any, view: SiteView) -> Any:
        start, end = open_bounds(view, query.first, query.last)
        flt = LedgerFilter(query.status, query.kind, query.ads_only, start, end)
        return await ledger_page(conn, view.scope, flt, limit=query.limit, cursor=query.cursor)

    return await _viewing(request, path.site_id, read)


@api(
    "One intent of a site, with its session's attribution",
    path=LedgerIntentPath,
    bad_path=404,
    response=LedgerIntentOut,
    tags=TAGS,
    responses={**UNAUTHORIZED, 404: "No such site or intent (or not one of yours)"},
)
async def get_intent(request: Request) -> Response:
    path = await _parse(request, LedgerIntentPath)
    return await _viewing(
        request, path.site_id, lambda conn, view: one_intent(conn, view.scope, path.intent_id)
    )


@api(
    "One session of a site: attribution, events in order, intents",
    path=TrackedSessionPath,
    bad_path=404,
    response=TrackedSessionOut,
    tags=TAGS,
    responses={**UNAUTHORIZED, 404: "No such site or session (or not one of yours)"},
)
async def get_session(request: Request) -> Response:
    path = await _parse(request, TrackedSessionPath)
    return await _viewing(
        request,
        path.site_id,
        lambda conn, view: session_timeline(conn, view.scope, path.session_id),
    )


routes: list[BaseRoute] = [
    Route("/t/sites/{site_id}/dashboard/kpis", get_kpis, methods=["GET"]),
    Route("/t/sites/{site_id}/dashboard/timeline", get_timeline, methods=["GET"]),
    Route("/t/sites/{site_id}/dashboard/breakdown", get_breakdown, methods=["GET"]),
    Route("/t/sites/{site_id}/intents", list_intents, methods=["GET"]),
    Route("/t/sites/{site_id}/intents/{intent_id}", get_intent, methods=["GET"]),
    Route("/t/sites/{site_id}/sessions/{session_id}", get_session, methods=["GET"]),
]
