"""The admin guard for ``/admin/*`` routes.

Interim implementation: an API key from settings (``Authorization: Bearer <key>`` or
``X-API-Key``), compared in constant time. The admin login of a later issue replaces the body
of ``require_admin`` and keeps its signature, so routes do not change.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from service.errors import ApiError


@dataclass(frozen=True)
class AdminPrincipal:
    id: str
    method: str


def _presented_key(conn: HTTPConnection) -> str | None:
    auth = conn.headers.get("authorization")
    if auth is not None:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token:
            return token.strip()
    return conn.headers.get("x-api-key")


async def require_admin(conn: HTTPConnection) -> AdminPrincipal:
    settings = conn.app.state.settings
    expected: str | None = settings.admin_api_key
    if not expected:
        raise ApiError(
            403, "admin_disabled", "admin access is disabled: KERVAN_ADMIN_API_KEY is not set"
        )
    presented = _presented_key(conn)
    if presented is None or not hmac.compare_digest(presented.encode(), expected.encode()):
        raise ApiError(
            401,
            "unauthorized",
            "admin credentials are missing or wrong",
            headers={"WWW-Authenticate": 'Bearer realm="kervan-admin"'},
        )
    return AdminPrincipal(id="api-key", method="api_key")


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
