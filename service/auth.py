"""The admin guard for ``/admin/*`` routes, and the admin of a WebSocket connection.

An admin is either a person with a session (``POST /admin/otp/verify``: the session cookie, or
its token as ``Authorization: Bearer``) or a machine client with the API key from settings
(``Authorization: Bearer <key>`` or ``X-API-Key``, compared in constant time). The session side
is ``service.admins`` (``AdminAuth``), reached through the ``AdminAuthenticator`` it provides
on the runtime, so this module stays below the features that import it.

Which credential decides: a token the caller passes (a WebSocket's first frame), else the
``Authorization`` header, else ``X-API-Key``, else the session cookie; a wrong one presented
explicitly is not rescued by another.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection

from core.i18n import Locale
from service.clientip import client_ip
from service.errors import ApiError

#: The session cookie: ``__Host-`` (Secure, Path=/, no Domain: no subdomain can plant or read
#: it) where kervan is reached over TLS, a plain name in development over http.
SESSION_COOKIE_PRODUCTION = "__Host-kervan_admin"
SESSION_COOKIE_DEVELOPMENT = "kervan_admin"


@dataclass(frozen=True)
class AdminPrincipal:
    #: Who acted, as audit rows and rate-limit keys name it: the admin's name, or "api-key".
    id: str
    method: str  # "session" or "api_key"
    admin_id: int | None = None
    name: str | None = None
    language: Locale | None = None
    #: The public id of the session this request came with (``GET /admin/sessions``).
    session_id: str | None = None


API_KEY_PRINCIPAL = AdminPrincipal(id="api-key", method="api_key")


@dataclass(frozen=True, slots=True)
class ClientInfo:
    ip: str
    user_agent: str


class AdminAuthenticator:
    """Turns a session token into its admin; ``service.admins.facility.AdminAuth`` is the one
    implementation, provided on the runtime under this class."""

    async def authenticate_token(
        self, token: str, *, client: ClientInfo | None = None
    ) -> AdminPrincipal | None:
        raise NotImplementedError


def session_cookie_name(env: str) -> str:
    return SESSION_COOKIE_PRODUCTION if env == "production" else SESSION_COOKIE_DEVELOPMENT


def client_info(conn: HTTPConnection) -> ClientInfo:
    return ClientInfo(ip=client_ip(conn), user_agent=conn.headers.get("user-agent", ""))


def _bearer(conn: HTTPConnection) -> str | None:
    auth = conn.headers.get("authorization")
    if auth is not None:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


def session_token(conn: HTTPConnection) -> str | None:
    """The session token a request presents: ``Authorization: Bearer``, else the cookie."""
    return _bearer(conn) or conn.cookies.get(session_cookie_name(conn.app.state.settings.env))


def _authenticator(conn: HTTPConnection) -> AdminAuthenticator | None:
    runtime: Any = getattr(conn.app.state, "runtime", None)
    if runtime is None:
        return None
    try:
        found: AdminAuthenticator = runtime.facility(AdminAuthenticator)
    except LookupError:  # an app without the admins feature: the API key alone
        return None
    return found


def _is_api_key(presented: str, expected: str | None) -> bool:
    return bool(expected) and hmac.compare_digest(presented.encode(), str(expected).encode())


async def admin_from_connection(
    conn: HTTPConnection, token: str | None = None
) -> AdminPrincipal | None:
    """The admin behind an HTTP request or a WebSocket, ``None`` when there is none.

    ``token`` is a credential the caller read itself (a WebSocket's ``token`` query value or
    first frame); it is taken as a session token or the API key, like a Bearer header.
    """
    expected: str | None = conn.app.state.settings.admin_api_key
    bearer = token or _bearer(conn)
    if bearer is not None and _is_api_key(bearer, expected):
        return API_KEY_PRINCIPAL
    if bearer is None:
        key = conn.headers.get("x-api-key")
        if key is not None:
            return API_KEY_PRINCIPAL if _is_api_key(key, expected) else None
    candidate = bearer or conn.cookies.get(session_cookie_name(conn.app.state.settings.env))
    if not candidate:
        return None
    authenticator = _authenticator(conn)
    if authenticator is None:
        return None
    return await authenticator.authenticate_token(candidate, client=client_info(conn))


async def require_admin(conn: HTTPConnection) -> AdminPrincipal:
    principal = await admin_from_connection(conn)
    if principal is not None:
        return principal
    if not conn.app.state.settings.admin_api_key and "x-api-key" in conn.headers:
        raise ApiError(
            403,
            "admin_disabled",
            "admin API key access is disabled: KERVAN_ADMIN_API_KEY is not set",
        )
    raise ApiError(
        401,
        "unauthorized",
        "admin credentials are missing or wrong",
        headers={"WWW-Authenticate": 'Bearer realm="kervan-admin"'},
    )


_PRINCIPAL = "kervan_admin"


async def authenticated_admin(conn: HTTPConnection) -> AdminPrincipal:
    """``require_admin``, once per request: the rate-limit key and the guard both ask."""
    known: AdminPrincipal | None = getattr(conn.state, _PRINCIPAL, None)
    if known is None:
        known = await require_admin(conn)
        setattr(conn.state, _PRINCIPAL, known)
    return known


def known_admin(conn: HTTPConnection) -> AdminPrincipal | None:
    """The admin this request authenticated as, if it did."""
    found: AdminPrincipal | None = getattr(conn.state, _PRINCIPAL, None)
    return found
