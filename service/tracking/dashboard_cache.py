"""The tracking dashboard's KPIs through the cache.

KPIs are the dashboard's hottest read (every page load, every reload) and the costliest (every
session and intent of the range). Dropping them on each ingested event would mean dropping them
all the time, so they are cached for a short TTL (``KERVAN_CACHE_DASHBOARD_KPIS_TTL_SECONDS``):
new sessions show within it. What a person does by hand shows at once: an intent's status change
and a seal drop the site's KPIs (``kpis_changed``).

The figures do not depend on who asks (every role sees the same totals; who may see the site at
all is checked on each request, before the cache), so one entry serves every member of a site.
The key holds everything the answer depends on: the site, the range, the site's time zone and
currency, its local today and retention (which decide rollups, raw days and expiry).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from service.cache.aside import CacheAside, invalidate_after_write
from service.runtime import Runtime
from service.tracking.dashboard import Reader, SiteView, kpis, period_of

KPI_CACHE = "tracking_kpis"


def site_tag(site_id: int) -> str:
    return f"kpis:{site_id}"


def kpis_reader(runtime: Runtime, first: date | None, last: date | None) -> Reader:
    """The KPI read of ``first``..``last`` (defaults as ``period_of``), through the cache."""
    cache = runtime.facility(CacheAside)
    ttl = runtime.settings.cache_dashboard_kpis_ttl_seconds

    async def read(conn: AsyncConnection, view: SiteView) -> dict[str, Any]:
        period = period_of(view, first, last)
        if ttl <= 0:
            return await kpis(conn, view, period)
        scope = view.scope
        key = orjson.dumps(
            [
                scope.site_id,
                str(period.first),
                str(period.last),
                view.zone.key,
                scope.currency,
                str(view.today),
                str(view.horizon.first_raw_day),
            ]
        ).decode()
        found: dict[str, Any] = await cache.get_or_load(
            KPI_CACHE,
            key,
            lambda: kpis(conn, view, period),
            ttl=ttl,
            tags=[site_tag(scope.site_id)],
        )
        return found

    return read


async def kpis_changed(runtime: Runtime, site_id: int) -> None:
    """Call after a committed change a person expects to see in the KPIs at once."""
    await invalidate_after_write(runtime.backends, site_tag(site_id))
