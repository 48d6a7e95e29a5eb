"""Changing a site's intents as its editors do: set a status (pending, junk, cancelled) or seal
one as a sale. Each change and the intent's new representation are one transaction, in which
the caller's scope of the site is resolved (``service.tracking.in_site``); the dashboard's
cached KPIs are dropped after it commits, so the next read sees the change.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from service.runtime import Runtime
from service.tracking.access import Actor
from service.tracking.dashboard_cache import kpis_changed
from service.tracking.dashboard_ledger import one_intent
from service.tracking.in_site import SiteWork, change_in_site
from service.tracking.lifecycle import seal, set_status
from service.tracking.scope import SiteScope
from service.tracking.sites import Site


async def _change(
    runtime: Runtime, actor: Actor, site_id: int, intent_id: int, work: SiteWork[object]
) -> dict[str, Any]:
    async def changed(conn: AsyncConnection, site: Site, scope: SiteScope) -> dict[str, Any]:
        await work(conn, site, scope)
        return await one_intent(conn, scope, intent_id)

    answer = await change_in_site(runtime, actor, site_id, changed)
    await kpis_changed(runtime, site_id)
    return answer


async def change_intent_status(
    runtime: Runtime, actor: Actor, site_id: int, intent_id: int, status: str, *, now: datetime
) -> dict[str, Any]:
    """The intent after its status was set (``lifecycle.set_status``)."""
    return await _change(
        runtime,
        actor,
        site_id,
        intent_id,
        lambda conn, _site, scope: set_status(conn, scope, intent_id, status, now=now),
    )


async def seal_sale(
    runtime: Runtime,
    actor: Actor,
    site_id: int,
    intent_id: int,
    *,
    amount: Decimal,
    currency: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The intent after it was sealed as a sale (``lifecycle.seal``; idempotent)."""
    return await _change(
        runtime,
        actor,
        site_id,
        intent_id,
        lambda conn, _site, scope: seal(
            conn, scope, intent_id, amount=amount, currency=currency, now=now
        ),
    )
