"""Sites and their members.

Platform admins add, list, read and change sites (``/admin/sites``). A site's members read it
(``GET /t/sites/{site_id}``: a site the caller is no member of is 404, as one that does not
exist); its owners (and admins) invite people by e-mail, change roles, remove members and make
the phone system's calls token. Each handler resolves the caller, parses the request and makes
one call into ``service/tracking`` (``site_admin``, ``site_changes``, ``membership``), which
opens the connection or transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core.i18n import Locale
from service.db.types import from_timestamp
from service.endpoint import admin_principal, api
from service.openapi import validation_rules
from service.responses import json_response
from service.runtime import get_runtime
from service.tracking.dashboard_ledger import MAX_ID
from service.tracking.dashboard_schemas import PathId
from service.tracking.members import MemberRole, member_out
from service.tracking.membership import (
    change_member_role,
    invite_person,
    remove_site_member,
    renew_calls_token,
    site_as_member,
    site_members,
)
from service.tracking.people import EMAIL_MAX_CHARS, EMAIL_PATTERN, RULE_PERSON_NAME
from service.tracking.people_guard import request_actor
from service.tracking.site_admin import admin_site, create_site, sites_page
from service.tracking.site_changes import change_site
from service.tracking.sites_manage import SITE_RULES, site_out
from service.validation import parse_body, parse_path, parse_query

TAGS = ["tracking-sites"]
UNAUTHORIZED = {401: "Sign in first: a person's session or admin credentials"}
NO_SITE = {**UNAUTHORIZED, 404: "No such site (or not one of yours)"}
OWNERS_ONLY = {403: "Only the site's owners (and platform admins) manage it"}
MAX_PAGE = 500
#: A host name with an optional port (``service.tracking.sites.check_domains``, any case).
HOST_PATTERN = (
    r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
    r"(:[0-9]{1,5})?$"
)
# Constraints on the types, not on the fields: a field ``T | None`` with constraints would apply
# them to an explicit null too (and fail).
Host = Annotated[str, Field(max_length=253, pattern=HOST_PATTERN)]
Domains = Annotated[list[Host], Field(min_length=1, max_length=20)]
SiteName = Annotated[str, Field(min_length=1, max_length=120)]
PersonName = Annotated[str, Field(min_length=1, max_length=120)]
Currency = Annotated[str, Field(pattern=r"^[A-Za-z]{3}$", description="ISO 4217, e.g. TRY")]
TimeZone = Annotated[
    str, Field(min_length=1, max_length=64, description="IANA, e.g. Europe/Berlin")
]
DOMAINS_DESCRIPTION = "Exact host names the site's pages come from (no scheme or wildcard)"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Path models are spelled out as parameters in /openapi.json: their names must be unique in the
# whole app, hence the prefix.
class TenantSitePath(Strict):
    site_id: PathId


class TenantMemberPath(Strict):
    site_id: PathId
    person_id: PathId


class SiteIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=validation_rules(*SITE_RULES))

    name: SiteName
    domains: Domains = Field(description=DOMAINS_DESCRIPTION)
    currency: Currency
    time_zone: TimeZone
    config: dict[str, Any] = Field(default_factory=dict)


class SitePatch(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=validation_rules(*SITE_RULES))

    name: SiteName | SkipJsonSchema[None] = None
    domains: Domains | SkipJsonSchema[None] = Field(default=None, description=DOMAINS_DESCRIPTION)
    currency: Currency | SkipJsonSchema[None] = None
    time_zone: TimeZone | SkipJsonSchema[None] = None
    config: dict[str, Any] | SkipJsonSchema[None] = Field(
        default=None, description="Merged into the config (RFC 7386: null removes a key)"
    )


class SiteOut(BaseModel):
    id: int
    name: str
    public_key: str = Field(description="The key the site's script sends")
    domains: list[str]
    currency: str
    time_zone: str
    config: dict[str, Any]
    calls_token_set: bool
    created_at: datetime
    role: Literal["owner", "editor", "viewer", "admin"] | SkipJsonSchema[None] = None


class AdminSitesQuery(Strict):
    after: int = Field(default=0, ge=0, le=MAX_ID, description="The last id of the previous page")
    limit: int = Field(default=100, ge=1, le=MAX_PAGE)


class SitesOut(BaseModel):
    items: list[SiteOut]
    next_after: int | None = Field(description="`after` of the next page; null: the last page")


class MemberOut(BaseModel):
    person_id: int
    email: str
    name: str
    language: Locale
    role: Literal["owner", "editor", "viewer"]
    active: bool
    created_at: datetime
    updated_at: datetime


class MembersOut(BaseModel):
    items: list[MemberOut]


class MemberIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=validation_rules(RULE_PERSON_NAME))

    email: str = Field(max_length=EMAIL_MAX_CHARS, pattern=EMAIL_PATTERN)
    role: MemberRole
    name: PersonName | SkipJsonSchema[None] = Field(default=None, description="For a new person")
    language: Locale | SkipJsonSchema[None] = Field(
        default=None, description="For a new person (default: the settings' admin language)"
    )


class InvitedOut(BaseModel):
    member: MemberOut
    new_person: bool = Field(description="The person did not exist and was created")
    notified: bool = Field(description="An e-mail tells the person (when e-mail is on)")


class RolePatch(Strict):
    role: MemberRole


class RemovedOut(BaseModel):
    person_id: int
    removed: Literal[True]


class CallsTokenOut(BaseModel):
    token: str = Field(description="Shown once: the phone system sends it as Bearer")
    created_at: datetime


def _now(request: Request) -> datetime:
    return from_timestamp(get_runtime(request).clock.now())


# ---------------------------------------------------------------- platform admins


@api(
    "Add a site",
    body=SiteIn,
    response=SiteOut,
    status=201,
    tags=["admin", *TAGS],
    admin=True,
)
async def create_site_route(request: Request) -> Response:
    body = await parse_body(request, SiteIn)
    site = await create_site(
        get_runtime(request),
        name=body.name,
        domains=body.domains,
        currency=body.currency,
        time_zone=body.time_zone,
        config=body.config,
        now=_now(request),
        actor=f"admin:{admin_principal(request).id}",
    )
    return json_response(site_out(site), status=201)


@api(
    "List the sites (by id, keyset pages)",
    query=AdminSitesQuery,
    response=SitesOut,
    tags=["admin", *TAGS],
    admin=True,
)
async def list_sites_route(request: Request) -> Response:
    query = parse_query(request, AdminSitesQuery)
    found = await sites_page(get_runtime(request), after=query.after, limit=query.limit)
    next_after = found[-1].id if len(found) == query.limit else None
    return json_response({"items": [site_out(s) for s in found], "next_after": next_after})


@api(
    "One site",
    path=TenantSitePath,
    bad_path=404,
    response=SiteOut,
    tags=["admin", *TAGS],
    admin=True,
    responses={404: "No such site"},
)
async def get_site_route(request: Request) -> Response:
    path = parse_path(request, TenantSitePath, bad_path=404)
    site = await admin_site(get_runtime(request), path.site_id)
    return json_response(site_out(site))


@api(
    "Change a site's name, domains, currency, time zone or config",
    path=TenantSitePath,
    bad_path=404,
    body=SitePatch,
    response=SiteOut,
    tags=["admin", *TAGS],
    admin=True,
    responses={404: "No such site"},
)
async def patch_site_route(request: Request) -> Response:
    path = parse_path(request, TenantSitePath, bad_path=404)
    body = await parse_body(request, SitePatch)
    site = await change_site(
        get_runtime(request),
        path.site_id,
        body.model_dump(exclude_none=True),
        now=_now(request),
        actor=f"admin:{admin_principal(request).id}",
    )
    return json_response(site_out(site))


# ---------------------------------------------------------------- members of a site


@api(
    "A site as its member sees it (with the caller's role)",
    path=TenantSitePath,
    bad_path=404,
    response=SiteOut,
    tags=TAGS,
    responses=NO_SITE,
)
async def member_site(request: Request) -> Response:
    actor = await request_actor(request)
    path = parse_path(request, TenantSitePath, bad_path=404)
    site, scope = await site_as_member(get_runtime(request), actor, path.site_id)
    return json_response(site_out(site, scope.role))


@api(
    "A site's members (any member may read them)",
    path=TenantSitePath,
    bad_path=404,
    response=MembersOut,
    tags=TAGS,
    responses=NO_SITE,
)
async def members(request: Request) -> Response:
    actor = await request_actor(request)
    path = parse_path(request, TenantSitePath, bad_path=404)
    found = await site_members(get_runtime(request), actor, path.site_id)
    return json_response({"items": [member_out(m) for m in found]})


@api(
    "Invite a person to the site by e-mail (created when new)",
    path=TenantSitePath,
    bad_path=404,
    body=MemberIn,
    response=InvitedOut,
    status=201,
    tags=TAGS,
    responses={**NO_SITE, **OWNERS_ONLY, 409: "Already a member (change the role instead)"},
)
async def invite(request: Request) -> Response:
    actor = await request_actor(request)
    path = parse_path(request, TenantSitePath, bad_path=404)
    body = await parse_body(request, MemberIn)
    made = await invite_person(
        get_runtime(request),
        actor,
        path.site_id,
        email=body.email,
        role=body.role,
        name=body.name,
        language=body.language,
        now=_now(request),
    )
    answer = {"member": member_out(made.invited.member), "new_person": made.invited.new_person}
    return json_response({**answer, "notified": made.notified}, status=201)


@api(
    "Change a member's role",
    path=TenantMemberPath,
    bad_path=404,
    body=RolePatch,
    response=MemberOut,
    tags=TAGS,
    responses={
        **UNAUTHORIZED,
        **OWNERS_ONLY,
        404: "No such site or member (or not one of yours)",
        409: "The last owner cannot stop being one",
    },
)
async def patch_member(request: Request) -> Response:
    actor = await request_actor(request)
    path = parse_path(request, TenantMemberPath, bad_path=404)
    body = await parse_body(request, RolePatch)
    member = await change_member_role(
        get_runtime(request), actor, path.site_id, path.person_id, body.role, now=_now(request)
    )
    return json_response(member_out(member))


@api(
    "Remove a member from the site",
    path=TenantMemberPath,
    bad_path=404,
    response=RemovedOut,
    tags=TAGS,
    responses={
        **UNAUTHORIZED,
        **OWNERS_ONLY,
        404: "No such site or member (or not one of yours)",
        409: "The last owner cannot be removed",
    },
)
async def delete_member(request: Request) -> Response:
    actor = await request_actor(request)
    path = parse_path(request, TenantMemberPath, bad_path=404)
    await remove_site_member(
        get_runtime(request), actor, path.site_id, path.person_id, now=_now(request)
    )
    return json_response({"person_id": path.person_id, "removed": True})


@api(
    "Make a new calls token for the site's phone system (shown once; the old one stops)",
    path=TenantSitePath,
    bad_path=404,
    response=CallsTokenOut,
    status=201,
    tags=TAGS,
    responses={**NO_SITE, **OWNERS_ONLY},
)
async def calls_token(request: Request) -> Response:
    actor = await request_actor(request)
    path = parse_path(request, TenantSitePath, bad_path=404)
    now = _now(request)
    token = await renew_calls_token(get_runtime(request), actor, path.site_id, now=now)
    headers = {"Cache-Control": "no-store"}
    return json_response({"token": token, "created_at": now}, status=201, headers=headers)


routes: list[BaseRoute] = [
    Route("/admin/sites", create_site_route, methods=["POST"]),
    Route("/admin/sites", list_sites_route, methods=["GET"]),
    Route("/admin/sites/{site_id}", get_site_route, methods=["GET"]),
    Route("/admin/sites/{site_id}", patch_site_route, methods=["PATCH"]),
    Route("/t/sites/{site_id}", member_site, methods=["GET"]),
    Route("/t/sites/{site_id}/members", members, methods=["GET"]),
    Route("/t/sites/{site_id}/members", invite, methods=["POST"]),
    Route("/t/sites/{site_id}/members/{person_id}", patch_member, methods=["PATCH"]),
    Route("/t/sites/{site_id}/members/{person_id}", delete_member, methods=["DELETE"]),
    Route("/t/sites/{site_id}/calls-token", calls_token, methods=["POST"]),
]
