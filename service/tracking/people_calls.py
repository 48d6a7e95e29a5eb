"""The people routes' calls on the database: the sites a signed-in caller sees (``GET /t/me``)
and a platform admin adding a person (``POST /admin/people``)."""

from __future__ import annotations

from datetime import datetime

from service.runtime import Runtime
from service.tracking.access import Actor
from service.tracking.people import Person, add_person
from service.tracking.sites import Site
from service.tracking.sites_manage import list_sites, sites_of_person

#: Sites listed for a platform admin in ``GET /t/me`` (every site; ``GET /admin/sites`` pages).
ADMIN_SITES_SHOWN = 500


async def sites_seen(
    runtime: Runtime, actor: Actor, person: Person | None
) -> list[tuple[Site, str]]:
    """The sites the caller sees with its role there: a platform admin every site (the first
    ``ADMIN_SITES_SHOWN``), a person those it is a member of."""
    async with runtime.db.connect() as conn:
        if actor.kind == "admin":
            return [(site, "admin") for site in await list_sites(conn, limit=ADMIN_SITES_SHOWN)]
        if person is None:
            raise ValueError("a person caller comes with its account")
        return [(site, role) for site, role in await sites_of_person(conn, person.id)]


async def create_person(
    runtime: Runtime,
    *,
    email: str,
    name: str,
    language: str,
    telegram_chat_id: str | None,
    now: datetime,
    actor: str,
) -> Person:
    """Add a person in one transaction (audited by ``add_person``)."""
    async with runtime.db.begin() as conn:
        return await add_person(
            conn,
            email=email,
            name=name,
            language=language,
            telegram_chat_id=telegram_chat_id,
            now=now,
            actor=actor,
        )
