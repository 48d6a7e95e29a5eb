"""A site's Google Ads offline conversions: the connection (owners connect and disconnect,
members read it without the token), the upload state of each sealed intent, the summary, and
the retry of a failed upload.

Each handler makes one call into ``service.ads.site_ads``, which resolves the caller's scope of
the site (a site that is not the caller's is 404, as one that does not exist; an intent of
another site is 404 too) in the connection or transaction it opens.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from service.ads.schemas import (
    ConnectionIn,
    ConnectionOut,
    SitePath,
    SummaryOut,
    UploadDetailOut,
    UploadPath,
    UploadsOut,
    UploadsQuery,
)
from service.ads.site_ads import (
    ads_connection,
    ads_summary,
    connect_ads,
    disconnect_ads,
    retry_ads_upload,
    upload_state,
    upload_states,
)
from service.endpoint import api
from service.responses import json_response
from service.runtime import get_runtime
from service.tracking.people_guard import request_actor
from service.validation import parse_body, parse_path, parse_query

TAGS = ["tracking-ads"]
UNAUTHORIZED = {401: "Sign in first: a person's session or admin credentials"}
NO_SITE = {**UNAUTHORIZED, 404: "No such site (or not one of yours)"}
NO_INTENT = {**UNAUTHORIZED, 404: "No such site or intent (or not one of yours)"}
OWNERS_ONLY = {403: "Only the site's owners (and platform admins) manage its Google Ads"}


@api(
    "The site's Google Ads connection (never its token)",
    path=SitePath,
    bad_path=404,
    response=ConnectionOut,
    tags=TAGS,
    responses=NO_SITE,
)
async def get_connection(request: Request) -> Response:
    actor = await request_actor(request)
    path = parse_path(request, SitePath, bad_path=404)
    answer = await ads_connection(get_runtime(request), actor, path.site_id)
    return json_response(answer)


@api(
    "Connect the site to a Google Ads customer and conversion action, or reconnect (resumes "
    "paused uploads; the refresh token is stored encrypted)",
    path=SitePath,
    bad_path=404,
    body=ConnectionIn,
    response=ConnectionOut,
    tags=TAGS,
    responses={
        **NO_SITE,
        **OWNERS_ONLY,
        409: "Google Ads uploads are not configured on this server",
    },
)
async def put_connection(request: Request) -> Response:
    actor = await request_actor(request)
    path = parse_path(request, SitePath, bad_path=404)
    body = await parse_body(request, ConnectionIn)
    answer = await connect_ads(
        get_runtime(request),
        actor,
        path.site_id,
        customer_id=body.customer_id,
        conversion_action=body.conversion_action,
        login_customer_id=body.login_customer_id,
        refresh_token=body.refresh_token,
    )
    return json_response(answer)


@api(
    "Disconnect the site from Google Ads (its token is deleted; pending uploads stop)",
    path=SitePath,
    bad_path=404,
    status=204,
    tags=TAGS,
    responses={**NO_SITE, **OWNERS_ONLY},
)
async def delete_connection(request: Request) -> Response:
    actor = await request_actor(request)
    path = parse_path(request, SitePath, bad_path=404)
    await disconnect_ads(get_runtime(request), actor, path.site_id)
    return Response(status_code=204)


@api(
    "Upload states of the site's sealed intents, newest first (filter by status and reason)",
    path=SitePath,
    bad_path=404,
    query=UploadsQuery,
    response=UploadsOut,
    tags=TAGS,
    responses=NO_SITE,
)
async def uploads(request: Request) -> Response:
    actor = await request_actor(request)
    path = parse_path(request, SitePath, bad_path=404)
    query = parse_query(request, UploadsQuery)
    items = await upload_states(
        get_runtime(request),
        actor,
        path.site_id,
        status=query.status,
        reason=query.reason,
        before=query.before,
        limit=query.limit,
    )
    next_before = items[-1]["intent_id"] if len(items) == query.limit else None
    return json_response({"items": items, "next_before": next_before})


@api(
    "One intent's upload state and its attempts (an unsealed intent answers status none)",
    path=UploadPath,
    bad_path=404,
    response=UploadDetailOut,
    tags=TAGS,
    responses=NO_INTENT,
)
async def upload(request: Request) -> Response:
    actor = await request_actor(request)
    path = parse_path(request, UploadPath, bad_path=404)
    answer = await upload_state(get_runtime(request), actor, path.site_id, path.intent_id)
    return json_response(answer)


@api(
    "Upload a failed or not eligible intent again once its cause is fixed (owners)",
    path=UploadPath,
    bad_path=404,
    response=UploadDetailOut,
    tags=TAGS,
    responses={
        **NO_INTENT,
        **OWNERS_ONLY,
        409: "Not retryable (pending or uploaded), or still not eligible (details.reason)",
    },
)
async def retry_upload(request: Request) -> Response:
    actor = await request_actor(request)
    path = parse_path(request, UploadPath, bad_path=404)
    answer = await retry_ads_upload(get_runtime(request), actor, path.site_id, path.intent_id)
    return json_response(answer)


@api(
    "The site's upload summary: pending, uploaded, failed and not eligible, by reason",
    path=SitePath,
    bad_path=404,
    response=SummaryOut,
    tags=TAGS,
    responses=NO_SITE,
)
async def summary(request: Request) -> Response:
    actor = await request_actor(request)
    path = parse_path(request, SitePath, bad_path=404)
    answer = await ads_summary(get_runtime(request), actor, path.site_id)
    return json_response(answer)


routes: list[BaseRoute] = [
    Route("/t/sites/{site_id}/ads/connection", get_connection, methods=["GET"]),
    Route("/t/sites/{site_id}/ads/connection", put_connection, methods=["PUT"]),
    Route("/t/sites/{site_id}/ads/connection", delete_connection, methods=["DELETE"]),
    Route("/t/sites/{site_id}/ads/uploads", uploads, methods=["GET"]),
    Route("/t/sites/{site_id}/ads/uploads/{intent_id}", upload, methods=["GET"]),
    Route("/t/sites/{site_id}/ads/uploads/{intent_id}/retry", retry_upload, methods=["POST"]),
    Route("/t/sites/{site_id}/ads/summary", summary, methods=["GET"]),
]
