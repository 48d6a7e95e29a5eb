"""What a site's people and platform admins see of its quotas: this month's usage of events
and intents against the effective limits (the site's plan in its config, or the server's
defaults), the warnings sent, and the months before."""

from __future__ import annotations

from typing import Any

from core.tracking.quota import end_of_month, month_of
from service.db import Database
from service.db.types import from_timestamp
from service.settings import Settings
from service.tracking import quota
from service.tracking.access import Actor, scope_for
from service.tracking.quota import KINDS, Kind, Usage
from service.tracking.sites import Site

#: Months of history shown before the current one.
HISTORY_MONTHS = 12


def _kind(site: Site, settings: Settings, kind: Kind, found: Usage) -> dict[str, Any]:
    limit = quota.limits_of(site, settings).of(kind)
    used = found.events if kind == "events" else found.intents
    warned = found.warned_events if kind == "events" else found.warned_intents
    return {
        "used": used,
        "limit": limit,
        "remaining": max(0, limit - used),
        # A limit of 0 allows nothing: it is used up from the start.
        "percent": round(min(used * 100 / limit, 999_999.9), 1) if limit else 100.0,
        "source": quota.limit_source(site, kind),
        "warned": warned,
    }


async def read_usage(
    db: Database, actor: Actor, site_id: int, settings: Settings, now: float
) -> dict[str, Any]:
    """The site's quota usage for ``actor`` (any member, or a platform admin; 404 otherwise)."""
    month = month_of(now)
    async with db.connect() as conn:
        site, scope = await scope_for(conn, actor, site_id)
        current = await quota.usage(conn, scope, month)
        before = await quota.history(conn, scope, month, HISTORY_MONTHS)
    answer: dict[str, Any] = {
        "site_id": site.id,
        "month": month,
        "reset_at": from_timestamp(end_of_month(month)),
        "warning_percent": settings.tracking_quota_warning_percent,
    }
    for kind in KINDS:
        answer[kind] = _kind(site, settings, kind, current)
    answer["history"] = [
        {"month": u.month, "events": u.events, "intents": u.intents} for u in before
    ]
    return answer
