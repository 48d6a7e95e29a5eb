"""People who sign in to sites' dashboards: login by one-time code, logout, who am I; and
platform admins adding people.

``POST /t/auth/otp/request`` sends a code to the person's Telegram chat or e-mail address (the
same 202 whether or not the person exists); ``POST /t/auth/otp/verify`` turns it into a session:
a cookie for browsers (``kervan_person``, ``__Host-kervan_person`` in production) and the token
in the body for ``Authorization: Bearer``. The package behind it is ``service/tracking``
(``PersonAuth``, the ``person`` kind of the admins' login layer).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core.i18n import Locale
from service.admins.accounts import CHAT_ID_PATTERN
from service.admins.otp import CODE_PATTERN
from service.admins.sessions import Session
from service.auth import client_info
from service.clientip import client_ip
from service.db.types import from_timestamp
from service.endpoint import admin_principal, api
from service.openapi import validation_rules
from service.responses import clear_cookie, json_response, set_cookie
from service.runtime import get_runtime
from service.tracking.access import Actor
from service.tracking.people import (
    EMAIL_MAX_CHARS,
    EMAIL_PATTERN,
    RULE_PERSON_NAME,
    Person,
)
from service.tracking.people_auth import PersonAuth
from service.tracking.people_calls import ADMIN_SITES_SHOWN, create_person, sites_seen
from service.tracking.people_guard import (
    person_auth,
    person_token,
    request_actor,
    request_person,
)
from service.validation import parse_body, read_body

NO_STORE = {"Cache-Control": "no-store"}
TAGS = ["tracking-people"]
_EMAIL = re.compile(EMAIL_PATTERN, re.IGNORECASE)
_EMAIL_FIELD = Field(
    max_length=EMAIL_MAX_CHARS,
    pattern=EMAIL_PATTERN,
    description="The person's e-mail address (any case)",
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PersonOtpRequestIn(Strict):
    email: str = _EMAIL_FIELD


class PersonOtpRequestOut(BaseModel):
    status: Literal["accepted"]
    code_ttl_seconds: int


class PersonOtpVerifyIn(Strict):
    email: str = _EMAIL_FIELD
    code: str = Field(pattern=CODE_PATTERN, description="The six digits sent to the person")


class PersonOut(BaseModel):
    id: int
    email: str
    name: str
    language: Locale
    telegram: bool = Field(description="Codes go to the person's Telegram chat")
    active: bool
    created_at: datetime


class PersonSessionOut(BaseModel):
    id: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


class PersonLoginOut(BaseModel):
    token: str = Field(description="The session token, for `Authorization: Bearer`")
    token_type: Literal["Bearer"]
    person: PersonOut
    session: PersonSessionOut


class PersonLogoutOut(BaseModel):
    revoked: bool


class MySiteOut(BaseModel):
    id: int
    name: str
    domains: list[str]
    currency: str
    time_zone: str
    role: Literal["owner", "editor", "viewer", "admin"]


class MeOut(BaseModel):
    kind: Literal["person", "admin"]
    id: str = Field(description="The person's id, or the admin's name")
    name: str
    person: PersonOut | None = Field(description="The person's account (null for an admin)")
    sites: list[MySiteOut] = Field(
        description="The sites the caller sees with its role there (a platform admin: every "
        f"site, at most {ADMIN_SITES_SHOWN}; GET /admin/sites lists them all)"
    )


class PersonIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=validation_rules(RULE_PERSON_NAME))

    email: str = _EMAIL_FIELD
    name: str = Field(min_length=1, max_length=120)
    language: Locale = "tr"
    telegram_chat_id: str | None = Field(
        default=None,
        pattern=CHAT_ID_PATTERN,
        description="Login codes go to this Telegram chat (else by e-mail)",
    )


def person_out(person: Person) -> dict[str, object]:
    return {
        "id": person.id,
        "email": person.email,
        "name": person.name,
        "language": person.language,
        "telegram": person.telegram_chat_id is not None,
        "active": person.active,
        "created_at": person.created_at,
    }


def _session_out(auth: PersonAuth, session: Session) -> dict[str, object]:
    return {
        "id": session.id,
        "created_at": from_timestamp(session.created),
        "last_seen_at": from_timestamp(session.seen),
        "expires_at": from_timestamp(auth.expires_at(session)),
    }


async def _by_ip(request: Request) -> str:
    return f"ip:{client_ip(request)}"


async def _by_email(request: Request) -> str | None:
    """The address in the JSON body, so one person's codes are limited from any address."""
    body = await read_body(request)
    request._body = body  # Starlette replays a cached body to the handler
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
    email = data.get("email") if isinstance(data, dict) else None
    if not isinstance(email, str) or not _EMAIL.match(email):
        return None
    return f"person:{email.strip().lower()}"


@api(
    "Send a one-time login code to a person (Telegram or e-mail)",
    body=PersonOtpRequestIn,
    response=PersonOtpRequestOut,
    status=202,
    tags=TAGS,
    responses={
        429: "Rate limited (per address and per e-mail), or the e-mail is locked out after "
        "failed codes: retry after Retry-After seconds"
    },
    limits=[("otp.send", _by_ip), ("otp.send", _by_email)],
)
async def request_code(request: Request) -> Response:
    body = await parse_body(request, PersonOtpRequestIn)
    auth = person_auth(request)
    await auth.request_code(
        body.email.strip().lower(),
        client=client_info(request),
        accept_language=request.headers.get("accept-language"),
    )
    # The same answer for every address: whether a person exists is not the caller's to learn.
    answer = {"status": "accepted", "code_ttl_seconds": int(auth.codes.ttl)}
    return json_response(answer, status=202, headers=NO_STORE)


@api(
    "Sign in with a one-time code: a session (cookie, and the token for Bearer use)",
    body=PersonOtpVerifyIn,
    response=PersonLoginOut,
    tags=TAGS,
    responses={
        401: "The code is wrong, expired or already used, or the e-mail is no enabled person",
        429: "Rate limited, or the e-mail is locked out after repeated failures: retry after "
        "Retry-After seconds",
    },
    limits=[("otp.verify", _by_ip), ("otp.verify", _by_email)],
)
async def verify_code(request: Request) -> Response:
    body = await parse_body(request, PersonOtpVerifyIn)
    auth = person_auth(request)
    login = await auth.verify(
        body.email.strip().lower(),
        body.code,
        client=client_info(request),
        accept_language=request.headers.get("accept-language"),
    )
    answer = {
        "token": login.token,
        "token_type": "Bearer",
        "person": person_out(login.account),
        "session": _session_out(auth, login.session),
    }
    response = json_response(answer, headers=NO_STORE)
    set_cookie(response, auth.cookie, login.token)
    return response


@api(
    "Sign out: end the person's session of the cookie or Bearer token, and clear the cookie",
    response=PersonLogoutOut,
    tags=TAGS,
)
async def logout(request: Request) -> Response:
    auth = person_auth(request)
    revoked = await auth.logout(person_token(request))
    response = json_response({"revoked": revoked}, headers=NO_STORE)
    clear_cookie(response, auth.cookie)
    return response


async def _me(request: Request, actor: Actor) -> dict[str, object]:
    account: Person | None = None
    person: dict[str, object] | None = None
    if actor.kind != "admin":
        account, _session = await request_person(request)
        person = person_out(account)
    pairs = await sites_seen(get_runtime(request), actor, account)
    sites = [
        {
            "id": site.id,
            "name": site.name,
            "domains": list(site.domains),
            "currency": site.currency,
            "time_zone": site.time_zone,
            "role": role,
        }
        for site, role in pairs
    ]
    return {
        "kind": actor.kind,
        "id": actor.id,
        "name": actor.name,
        "person": person,
        "sites": sites,
    }


@api(
    "Who am I: the signed-in person (or platform admin) and the sites they see, with roles",
    response=MeOut,
    tags=TAGS,
    responses={401: "Sign in first: a person's session or admin credentials"},
)
async def me(request: Request) -> Response:
    actor = await request_actor(request)
    return json_response(await _me(request, actor), headers=NO_STORE)


@api(
    "Add a person (who may then be made a member of sites and sign in)",
    body=PersonIn,
    response=PersonOut,
    status=201,
    tags=["admin", *TAGS],
    admin=True,
    responses={409: "A person with this e-mail address exists"},
)
async def add_person_route(request: Request) -> Response:
    body = await parse_body(request, PersonIn)
    runtime = get_runtime(request)
    principal = admin_principal(request)
    person = await create_person(
        runtime,
        email=body.email,
        name=body.name,
        language=body.language,
        telegram_chat_id=body.telegram_chat_id,
        now=from_timestamp(runtime.clock.now()),
        actor=f"admin:{principal.id}",
    )
    return json_response(person_out(person), status=201)


routes: list[BaseRoute] = [
    Route("/t/auth/otp/request", request_code, methods=["POST"]),
    Route("/t/auth/otp/verify", verify_code, methods=["POST"]),
    Route("/t/auth/logout", logout, methods=["POST"]),
    Route("/t/me", me, methods=["GET"]),
    Route("/admin/people", add_person_route, methods=["POST"]),
]
