"""Who calls a ``/t/`` dashboard route: a signed-in person, or a platform admin.

``request_actor(request)`` is the one place that decides it, for every tracking route that acts
on a site (``/t/sites/{site_id}/...``); the feature then turns the actor into the site's scope
with ``service.tracking.access.scope_for`` inside its own transaction (404 for a site the actor
may not see). Which credential decides:

- ``Authorization: Bearer <token>``: a person's session token, else whatever the admin guard
  accepts as Bearer (an admin's session token, the admin API key); a wrong Bearer is not rescued
  by a cookie;
- else the person session cookie (``kervan_person``, ``__Host-kervan_person`` in production);
- else what the admin guard accepts without Bearer (``X-API-Key``, the admin session cookie).

No credential, or none that names a live session or the key: 401.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection, Request

from service.auth import admin_from_connection, client_info
from service.errors import ApiError
from service.runtime import get_runtime
from service.tracking.access import Actor
from service.tracking.people import Person
from service.tracking.people_auth import PersonAuth, person_cookie_name

_ACTOR = "kervan_tracking_actor"
_PERSON = "kervan_tracking_person"


def _bearer(conn: HTTPConnection) -> str | None:
    scheme, _, token = conn.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def person_token(conn: HTTPConnection) -> str | None:
    """The person session token a request presents: ``Authorization: Bearer``, else the cookie."""
    return _bearer(conn) or conn.cookies.get(person_cookie_name(conn.app.state.settings.env))


def person_auth(conn: HTTPConnection) -> PersonAuth:
    return get_runtime(conn).facility(PersonAuth)


async def _person(conn: HTTPConnection, token: str) -> tuple[Person, str] | None:
    return await person_auth(conn).authenticate_person(token, client=client_info(conn))


def unauthorized() -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        "sign in first: a person's session (cookie or Bearer) or admin credentials",
        headers={"WWW-Authenticate": 'Bearer realm="kervan"'},
    )


async def resolve_actor(conn: HTTPConnection) -> Actor | None:
    """The caller, or ``None``; once per request (the rate-limit key and the handler both ask)."""
    if hasattr(conn.state, _ACTOR):
        known: Actor | None = getattr(conn.state, _ACTOR)
        return known
    actor: Actor | None = None
    bearer = _bearer(conn)
    token = bearer or conn.cookies.get(person_cookie_name(conn.app.state.settings.env))
    found = await _person(conn, token) if token else None
    if found is not None:
        person, session_id = found
        actor = Actor(kind="person", id=str(person.id), name=person.name)
        setattr(conn.state, _PERSON, (person, session_id))
    else:
        # The admin guard applies the same precedence: a Bearer decides alone, else its key
        # header or cookie (one browser may be signed in as a person and as an admin).
        admin = await admin_from_connection(conn)
        if admin is not None:
            actor = Actor(kind="admin", id=admin.id, name=admin.name or admin.id)
    setattr(conn.state, _ACTOR, actor)
    return actor


async def by_actor(request: Request) -> str | None:
    """A rate-limit key: the signed-in person or admin (``None`` without one: the route's
    guard then answers 401)."""
    actor = await resolve_actor(request)
    return None if actor is None else actor.label


async def request_actor(request: Request) -> Actor:
    """The caller of a site's dashboard route; 401 without valid credentials."""
    actor = await resolve_actor(request)
    if actor is None:
        raise unauthorized()
    return actor


async def request_person(request: Request) -> tuple[Person, str]:
    """The signed-in person and their session's public id (routes for people only); 401 for
    anyone else, admins included."""
    actor = await resolve_actor(request)
    found: tuple[Person, str] | None = getattr(request.state, _PERSON, None)
    if actor is None or found is None:
        raise unauthorized()
    return found
