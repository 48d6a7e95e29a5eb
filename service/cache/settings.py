"""Cache-aside's part of the settings (``KERVAN_CACHE_*``). A leaf module.

Each cache's TTL bounds how stale a value can get when an invalidation is lost (a write while
the state backend failed) or when a write path does not invalidate at all (see each cache).
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class CacheSettings(BaseModel):
    cache_crm_convos_ttl_seconds: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="CRM conversation lists (/admin/crm/convos) are cached this long; every "
        "write that changes a list drops them at once; 0 = not cached.",
    )
    cache_dashboard_kpis_ttl_seconds: float = Field(
        default=15.0,
        ge=0,
        le=600,
        description="Tracking dashboard KPIs are cached per site this long (new events show "
        "within it); an intent's status change or seal drops the site's at once; 0 = not "
        "cached.",
    )
