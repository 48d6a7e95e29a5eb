"""The prologue every call on one site's data shares: resolve the caller's scope of the site
(``service.tracking.access.scope_for``: 404 for a site the caller may not see) in the same
connection as the work, so the role that allowed it is the one that holds while it runs.

``read_in_site`` reads (a connection, nothing committed); ``change_in_site`` writes (one
transaction: the scope check and the work commit or roll back together).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from service.runtime import Runtime
from service.tracking.access import Actor, scope_for
from service.tracking.scope import SiteScope
from service.tracking.sites import Site

T = TypeVar("T")
SiteWork = Callable[[AsyncConnection, Site, SiteScope], Awaitable[T]]


async def read_in_site(runtime: Runtime, actor: Actor, site_id: int, work: SiteWork[T]) -> T:
    async with runtime.db.connect() as conn:
        site, scope = await scope_for(conn, actor, site_id)
        return await work(conn, site, scope)


async def change_in_site(runtime: Runtime, actor: Actor, site_id: int, work: SiteWork[T]) -> T:
    async with runtime.db.begin() as conn:
        site, scope = await scope_for(conn, actor, site_id)
        return await work(conn, site, scope)
