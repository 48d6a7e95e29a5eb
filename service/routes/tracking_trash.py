"""The tracking trash: deleting and restoring sites and intents, and listing what is deleted.

``DELETE /t/sites/{site_id}`` (owners, admins) and ``DELETE /t/sites/{site_id}/intents/
{intent_id}`` (editors, owners, admins) delete softly; ``POST .../restore`` brings the item back
within the retention period (owners and admins; 410 ``expired`` after it). A site's trash
(``GET /t/sites/{site_id}/trash``) lists its deleted intents; ``GET /t/trash/sites`` the
deleted sites the caller owns (an admin: every one), as ``GET /admin/trash/sites`` does for
admins. Each handler resolves the caller and makes one call into ``service/tracking/trash.py``,
which opens the transaction.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from service.endpoint import admin_principal, api
from service.responses import json_response
from service.routes.tracking_sites import SiteOut
from service.runtime import get_runtime
from service.tracking.access import Actor
from service.tracking.dashboard_ledger import CURSOR_MAX_LENGTH, CURSOR_PATTERN
from service.tracking.dashboard_schemas import IntentOut, PathId
from service.tracking.people_guard import request_actor
from service.tracking.trash import DEFAULT_PAGE, MAX_PAGE, SiteTrash
from service.validation import parse_path, parse_query

TAGS = ["tracking-trash"]
UNAUTHORIZED = {401: "Sign in first: a person's session or admin credentials"}
RESTORABLE = "Until when it can be restored; later it is purged for good"
NOT_RESTORABLE = {
    409: "It is not deleted (`not_deleted`), or it changed meanwhile",
    410: "Deleted longer ago than the retention period (`expired`): it is purged soon",
}
NO_CURSOR = {400: "The cursor is not one this API issued"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Path models are spelled out as parameters in /openapi.json: their names must be unique in the
# whole app, hence the prefix.
class TrashSitePath(Strict):
    site_id: PathId


class TrashIntentPath(Strict):
    site_id: PathId
    intent_id: PathId


class TrashPageQuery(Strict):
    limit: int = Field(default=DEFAULT_PAGE, ge=1, le=MAX_PAGE)
    cursor: str | SkipJsonSchema[None] = Field(
        default=None,
        max_length=CURSOR_MAX_LENGTH,
        description="next_cursor of the previous page (empty: the first page); any other "
        "string is refused with 400 invalid_cursor",
        json_schema_extra={"pattern": CURSOR_PATTERN},
    )


class TrashedSiteOut(SiteOut):
    deleted_at: datetime
    restorable_until: datetime = Field(description=RESTORABLE)


class TrashedSitesOut(BaseModel):
    items: list[TrashedSiteOut]
    next_cursor: str | None


class TrashedIntentOut(IntentOut):
    deleted_at: str
    restorable_until: str = Field(description=RESTORABLE)


class TrashedIntentsOut(BaseModel):
    items: list[TrashedIntentOut]
    next_cursor: str | None


def _trash(request: Request) -> SiteTrash:
    return SiteTrash.of(get_runtime(request))


@api(
    "Delete a site (owners and admins): ingest and its script stop, members and dashboards "
    "no longer see it; restorable within the retention period",
    path=TrashSitePath,
    bad_path=404,
    response=TrashedSiteOut,
    tags=TAGS,
    responses={
        **UNAUTHORIZED,
        403: "Only the site's owners (and platform admins) delete it",
        404: "No such site (or not one of yours)",
    },
)
async def delete_site(request: Request) -> Response:
    actor = await request_actor(request)
    path = parse_path(request, TrashSitePath, bad_path=404)
    return json_response(await _trash(request).delete_site(actor, path.site_id))


@api(
    "Restore a deleted site as it was (its owners and admins)",
    path=TrashSitePath,
    bad_path=404,
    response=SiteOut,
    tags=TAGS,
    responses={
        **UNAUTHORIZED,
        403: "Only the site's owners (and platform admins) restore it",
        404: "No such site (or not one of yours)",
        **NOT_RESTORABLE,
    },
)
async def restore_site(request: Request) -> Response:
    actor = await request_actor(request)
    path = parse_path(request, TrashSitePath, bad_path=404)
    return json_response(await _trash(request).restore_site(actor, path.site_id))


@api(
    "Delete an intent (editors, owners, admins): it leaves the ledger, the counts and the "
    "lookups, and a sale not uploaded yet is not sent to Google Ads",
    path=TrashIntentPath,
    bad_path=404,
    response=TrashedIntentOut,
    tags=TAGS,
    responses={
        **UNAUTHORIZED,
        403: "Viewers do not change a site's intents",
        404: "No such site or intent (or not one of yours)",
    },
)
async def delete_intent(request: Request) -> Response:
    actor = await request_actor(request)
    path = parse_path(request, TrashIntentPath, bad_path=404)
    found = await _trash(request).delete_intent(actor, path.site_id, path.intent_id)
    return json_response(found)


@api(
    "Restore a deleted intent as it was (owners and admins)",
    path=TrashIntentPath,
    bad_path=404,
    response=IntentOut,
    tags=TAGS,
    responses={
        **UNAUTHORIZED,
        403: "Only the site's owners (and platform admins) restore intents",
        404: "No such site or intent (or not one of yours)",
        **NOT_RESTORABLE,
    },
)
async def restore_intent(request: Request) -> Response:
    actor = await request_actor(request)
    path = parse_path(request, TrashIntentPath, bad_path=404)
    found = await _trash(request).restore_intent(actor, path.site_id, path.intent_id)
    return json_response(found)


@api(
    "A site's trash: its deleted intents not purged yet, the latest deletion first (owners and "
    "admins)",
    path=TrashSitePath,
    bad_path=404,
    query=TrashPageQuery,
    response=TrashedIntentsOut,
    tags=TAGS,
    responses={
        **UNAUTHORIZED,
        **NO_CURSOR,
        403: "Only the site's owners (and platform admins) read its trash",
        404: "No such site (or not one of yours)",
    },
)
async def site_trash(request: Request) -> Response:
    actor = await request_actor(request)
    path = parse_path(request, TrashSitePath, bad_path=404)
    query = parse_query(request, TrashPageQuery)
    found = await _trash(request).deleted_intents(
        actor, path.site_id, limit=query.limit, cursor=query.cursor
    )
    return json_response(found)


@api(
    "The deleted sites the caller owns (an admin: every one), not purged yet, the latest "
    "deletion first",
    query=TrashPageQuery,
    response=TrashedSitesOut,
    tags=TAGS,
    responses={**UNAUTHORIZED, **NO_CURSOR},
)
async def my_deleted_sites(request: Request) -> Response:
    actor = await request_actor(request)
    query = parse_query(request, TrashPageQuery)
    found = await _trash(request).deleted_sites(actor, limit=query.limit, cursor=query.cursor)
    return json_response(found)


@api(
    "Every deleted site not purged yet, the latest deletion first",
    query=TrashPageQuery,
    response=TrashedSitesOut,
    tags=["admin", *TAGS],
    admin=True,
    responses=NO_CURSOR,
)
async def deleted_sites(request: Request) -> Response:
    query = parse_query(request, TrashPageQuery)
    actor = Actor(kind="admin", id=admin_principal(request).id)
    found = await _trash(request).deleted_sites(actor, limit=query.limit, cursor=query.cursor)
    return json_response(found)


routes: list[BaseRoute] = [
    Route("/t/sites/{site_id}", delete_site, methods=["DELETE"]),
    Route("/t/sites/{site_id}/restore", restore_site, methods=["POST"]),
    Route("/t/sites/{site_id}/intents/{intent_id}", delete_intent, methods=["DELETE"]),
    Route("/t/sites/{site_id}/intents/{intent_id}/restore", restore_intent, methods=["POST"]),
    Route("/t/sites/{site_id}/trash", site_trash, methods=["GET"]),
    Route("/t/trash/sites", my_deleted_sites, methods=["GET"]),
    Route("/admin/trash/sites", deleted_sites, methods=["GET"]),
]
