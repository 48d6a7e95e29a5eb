"""From a signed-in actor to a ``SiteScope``: a platform admin sees every site, a person the
sites it is a member of with its role there; anything else is ``NotFound`` (404): a site of
another tenant is not told to exist."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.errors import Forbidden, NotFound
from service.db.tables.tracking import site_members
from service.tracking.scope import Role, SiteScope
from service.tracking.sites import Site, get_site


@dataclass(frozen=True, slots=True)
class Actor:
    """Who signed in: a platform admin (``admins`` account or the API key) or a person."""

    kind: Literal["admin", "person"]
    id: str  # the admin's id or name, or the person's id
    name: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.id}"


async def scope_for(conn: AsyncConnection, actor: Actor, site_id: int) -> tuple[Site, SiteScope]:
    site = await get_site(conn, site_id)
    if site is None:
        raise NotFound("no such site")
    role: Role
    if actor.kind == "admin":
        role = "admin"
    else:
        found = (
            await conn.execute(
                select(site_members.c.role).where(
                    site_members.c.site_id == site_id,
                    site_members.c.person_id == int(actor.id),
                )
            )
        ).scalar_one_or_none()
        if found is None:
            raise NotFound("no such site")
        role = cast(Role, found)
    scope = SiteScope(
        site_id=site.id,
        role=role,
        actor=actor.label,
        time_zone=site.time_zone,
        currency=site.currency,
    )
    return site, scope


def require_edit(scope: SiteScope) -> None:
    if not scope.can_edit:
        raise Forbidden("viewers may read this site's data but not change it")


def require_manage(scope: SiteScope) -> None:
    if not scope.can_manage:
        raise Forbidden("only the site's owners manage it")


def script_scope(site: Site) -> SiteScope:
    """The scope of the site's own script (ingest): it writes, it reads nothing back."""
    return SiteScope(
        site_id=site.id,
        role="script",
        actor="script",
        time_zone=site.time_zone,
        currency=site.currency,
    )
