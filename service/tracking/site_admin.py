"""Platform admins' calls on sites (``/admin/sites``): add one, page through them, read one.

A change of a site is ``service.tracking.site_changes.change_site`` (it also drops the site from
the ingest's cache).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.errors import NotFound
from service.runtime import Runtime
from service.tracking.sites import Site, get_site
from service.tracking.sites_manage import add_site, list_sites


async def create_site(
    runtime: Runtime,
    *,
    name: str,
    domains: list[str],
    currency: str,
    time_zone: str,
    config: dict[str, Any],
    now: datetime,
    actor: str,
) -> Site:
    """Add a site in one transaction (audited by ``add_site``)."""
    async with runtime.db.begin() as conn:
        return await add_site(
            conn,
            name=name,
            domains=domains,
            currency=currency,
            time_zone=time_zone,
            config=config,
            now=now,
            actor=actor,
        )


async def sites_page(runtime: Runtime, *, after: int, limit: int) -> list[Site]:
    async with runtime.db.connect() as conn:
        return await list_sites(conn, after=after, limit=limit)


async def admin_site(runtime: Runtime, site_id: int) -> Site:
    """One site, any site (an admin's); ``NotFound`` when there is none."""
    async with runtime.db.connect() as conn:
        site = await get_site(conn, site_id)
    if site is None:
        raise NotFound("no such site")
    return site
