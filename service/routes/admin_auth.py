"""Admin login by one-time code over Telegram, and the caller's sessions.

``POST /admin/otp/request`` sends a code to the admin's Telegram chat (the same 202 whether or
not the admin exists); ``POST /admin/otp/verify`` turns the code into a session: a cookie for
browsers and the token in the body for ``Authorization: Bearer``. The package behind it is
``service/admins`` (``AdminAuth``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

import orjson
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core.i18n import Locale
from service.admins.accounts import NAME_PATTERN
from service.admins.facility import AdminAuth
from service.admins.otp import CODE_PATTERN
from service.admins.sessions import SESSION_ID_PATTERN, Session
from service.auth import AdminPrincipal, client_info, session_token
from service.clientip import client_ip
from service.db.types import from_timestamp
from service.endpoint import admin_principal, api
from service.errors import ApiError
from service.responses import clear_cookie, json_response, set_cookie
from service.runtime import get_runtime
from service.validation import parse_body, parse_path, read_body

NO_STORE = {"Cache-Control": "no-store"}
_NAME = re.compile(NAME_PATTERN)
_NAME_FIELD = Field(pattern=NAME_PATTERN, description="The admin's name")


class OtpRequestIn(BaseModel):
    admin: str = _NAME_FIELD


class OtpRequestOut(BaseModel):
    status: Literal["accepted"]
    code_ttl_seconds: int


class OtpVerifyIn(BaseModel):
    admin: str = _NAME_FIELD
    code: str = Field(pattern=CODE_PATTERN, description="The six digits sent over Telegram")


class AdminOut(BaseModel):
    id: int
    name: str
    language: Locale


class SessionOut(BaseModel):
    id: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ip: str
    user_agent: str
    current: bool


class LoginOut(BaseModel):
    token: str = Field(description="The session token, for `Authorization: Bearer`")
    token_type: Literal["Bearer"]
    admin: AdminOut
    session: SessionOut


class SessionsOut(BaseModel):
    items: list[SessionOut]


class SessionPath(BaseModel):
    session_id: str = Field(pattern=SESSION_ID_PATTERN)


class RevokedOut(BaseModel):
    id: str
    revoked: bool


class RevokedAllOut(BaseModel):
    revoked: int


class LogoutOut(BaseModel):
    revoked: bool


def _auth(request: Request) -> AdminAuth:
    return get_runtime(request).facility(AdminAuth)


async def _by_ip(request: Request) -> str:
    return f"ip:{client_ip(request)}"


async def _by_admin_name(request: Request) -> str | None:
    """The admin name in the JSON body, so one account's codes are limited from any address."""
    body = await read_body(request)
    request._body = body  # Starlette replays a cached body to the handler
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
    name = data.get("admin") if isinstance(data, dict) else None
    return f"admin:{name}" if isinstance(name, str) and _NAME.match(name) else None


def _session_out(auth: AdminAuth, session: Session, current: str | None) -> dict[str, object]:
    return {
        "id": session.id,
        "created_at": from_timestamp(session.created),
        "last_seen_at": from_timestamp(session.seen),
        "expires_at": from_timestamp(auth.expires_at(session)),
        "ip": session.ip,
        "user_agent": session.user_agent,
        "current": session.id == current,
    }


@api(
    "Send a one-time login code to an admin's Telegram chat",
    body=OtpRequestIn,
    response=OtpRequestOut,
    status=202,
    tags=["admin", "auth"],
    responses={
        429: "Rate limited (per address and per admin name), or the name is locked out after "
        "failed codes: retry after Retry-After seconds"
    },
    limits=[("otp.send", _by_ip), ("otp.send", _by_admin_name)],
)
async def request_code(request: Request) -> Response:
    body = await parse_body(request, OtpRequestIn)
    auth = _auth(request)
    await auth.request_code(
        body.admin,
        client=client_info(request),
        accept_language=request.headers.get("accept-language"),
    )
    # The same answer for every name: whether an admin exists is not the caller's to learn.
    answer = {"status": "accepted", "code_ttl_seconds": int(auth.codes.ttl)}
    return json_response(answer, status=202, headers=NO_STORE)


@api(
    "Log in with a one-time code: a session (cookie, and the token for Bearer use)",
    body=OtpVerifyIn,
    response=LoginOut,
    tags=["admin", "auth"],
    responses={
        401: "The code is wrong, expired or already used, or the name is no enabled admin",
        429: "Rate limited, or the name is locked out after repeated failures: retry after "
        "Retry-After seconds",
    },
    limits=[("otp.verify", _by_ip), ("otp.verify", _by_admin_name)],
)
async def verify_code(request: Request) -> Response:
    body = await parse_body(request, OtpVerifyIn)
    auth = _auth(request)
    login = await auth.verify_code(
        body.admin,
        body.code,
        client=client_info(request),
        accept_language=request.headers.get("accept-language"),
    )
    principal = login.principal
    answer = {
        "token": login.token,
        "token_type": "Bearer",
        "admin": {"id": principal.admin_id, "name": principal.name, "language": principal.language},
        "session": _session_out(auth, login.session, login.session.id),
    }
    response = json_response(answer, headers=NO_STORE)
    set_cookie(response, auth.cookie, login.token)
    return response


@api(
    "The calling admin's live sessions, newest first (none for the API key)",
    response=SessionsOut,
    tags=["admin", "auth"],
    admin=True,
)
async def list_sessions(request: Request) -> Response:
    principal = admin_principal(request)
    auth = _auth(request)
    sessions = await auth.list_sessions(principal)
    items = [_session_out(auth, s, principal.session_id) for s in sessions]
    return json_response({"items": items}, headers=NO_STORE)


def _ended_current(response: Response, auth: AdminAuth, principal: AdminPrincipal) -> None:
    if principal.session_id is not None:
        clear_cookie(response, auth.cookie)


@api(
    "Revoke one of the calling admin's sessions",
    path=SessionPath,
    bad_path=404,
    response=RevokedOut,
    tags=["admin", "auth"],
    responses={404: "No such live session of the calling admin"},
    admin=True,
)
async def revoke_session(request: Request) -> Response:
    path = parse_path(request, SessionPath, bad_path=404)
    principal = admin_principal(request)
    auth = _auth(request)
    if not await auth.revoke_session(principal, path.session_id):
        raise ApiError(404, "not_found", "no such session")
    response = json_response({"id": path.session_id, "revoked": True}, headers=NO_STORE)
    if path.session_id == principal.session_id:
        _ended_current(response, auth, principal)
    return response


@api(
    "Revoke every session of the calling admin, the current one included",
    response=RevokedAllOut,
    tags=["admin", "auth"],
    admin=True,
)
async def revoke_all_sessions(request: Request) -> Response:
    principal = admin_principal(request)
    auth = _auth(request)
    ended = await auth.revoke_all(principal)
    response = json_response({"revoked": len(ended)}, headers=NO_STORE)
    _ended_current(response, auth, principal)
    return response


@api(
    "Log out: end the session of the cookie or Bearer token, and clear the cookie",
    response=LogoutOut,
    tags=["admin", "auth"],
)
async def logout(request: Request) -> Response:
    auth = _auth(request)
    revoked = await auth.logout(session_token(request))
    response = json_response({"revoked": revoked}, headers=NO_STORE)
    clear_cookie(response, auth.cookie)
    return response


routes: list[BaseRoute] = [
    Route("/admin/otp/request", request_code, methods=["POST"]),
    Route("/admin/otp/verify", verify_code, methods=["POST"]),
    Route("/admin/sessions", list_sessions, methods=["GET"]),
    Route("/admin/sessions", revoke_all_sessions, methods=["DELETE"]),
    Route("/admin/sessions/{session_id}", revoke_session, methods=["DELETE"]),
    Route("/admin/logout", logout, methods=["POST"]),
]
