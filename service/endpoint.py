"""``@api``: the one declaration of an HTTP endpoint.

It records what ``/openapi.json`` documents (models, statuses, tags) and applies what the
declaration implies, so no route repeats it: ``admin=True`` authenticates the admin (the one
place that decides who is an admin is ``service.auth.require_admin``) and paces the admin by the
``admin`` rate-limit policy; ``limits`` adds further ``(policy, key function)`` pairs.
Handlers read the authenticated admin with ``admin_principal(request)``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from service.auth import AdminPrincipal, authenticated_admin, known_admin
from service.openapi import ApiSpec
from service.ratelimit.http import rate_limited
from service.ratelimit.keyfuncs import KeyFunc, by_admin

Endpoint = Callable[[Request], Awaitable[Response]]


def admin_principal(request: Request) -> AdminPrincipal:
    """The admin that ``@api(admin=True)`` authenticated for this request."""
    principal = known_admin(request)
    if principal is None:
        raise RuntimeError("admin_principal() on an endpoint not declared with @api(admin=True)")
    return principal


def _admin_only(endpoint: Endpoint) -> Endpoint:
    @functools.wraps(endpoint)
    async def guarded(request: Request) -> Response:
        await authenticated_admin(request)
        return await endpoint(request)

    return guarded


def api(
    summary: str,
    *,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    path: type[BaseModel] | None = None,
    bad_path: int = 422,
    response: type[BaseModel] | None = None,
    status: int = 200,
    tags: Iterable[str] = (),
    responses: dict[int, str] | None = None,
    media_type: str = "application/json",
    admin: bool = False,
    limits: Sequence[tuple[str, KeyFunc]] = (),
) -> Callable[[Endpoint], Endpoint]:
    """Declare an endpoint: its OpenAPI description, its admin guard and its rate limits."""
    spec = ApiSpec(
        summary,
        body=body,
        query=query,
        path=path,
        bad_path=bad_path,
        response=response,
        status=status,
        tags=list(tags),
        responses=dict(responses or {}),
        media_type=media_type,
        admin=admin,
    )
    # The admin policy is keyed by the admin's id, so it only paces authenticated requests;
    # others are refused by the guard inside it (and paced per IP by the edge).
    rules: list[tuple[str, KeyFunc]] = [("admin", by_admin)] if admin else []
    rules += limits

    def declare(endpoint: Endpoint) -> Endpoint:
        wrapped = _admin_only(endpoint) if admin else endpoint
        if rules:
            wrapped = rate_limited(*rules)(wrapped)
        marked: Any = wrapped
        marked.__kervan_api__ = spec
        return wrapped

    return declare
