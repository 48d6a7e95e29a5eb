"""An admin's change of a site, taking effect at once in this process's ingest.

The ingest reads sites through a cache (``service.tracking.sitecache``, 10 s): without dropping
the entry, a site whose domains were narrowed would keep accepting batches from the old origins,
and a new quota limit would not apply, until the entry expired. Other processes see the change
within that TTL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from service.runtime import Runtime
from service.tracking.ingest import TrackingIngest
from service.tracking.sites import Site
from service.tracking.sites_manage import update_site


async def change_site(
    runtime: Runtime, site_id: int, changes: dict[str, Any], *, now: datetime, actor: str
) -> Site:
    """Apply ``changes`` to a live site in one transaction (audited by ``update_site``)."""
    async with runtime.db.begin() as conn:
        site = await update_site(conn, site_id, changes, now=now, actor=actor)
    runtime.facility(TrackingIngest).forget_site(site.public_key)
    return site
