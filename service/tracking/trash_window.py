"""How long a soft-deleted item stays restorable, shared by every trash (sites and intents in
``service/tracking/trash.py``, CRM contacts and notes in ``service/whatsapp/crm_trash.py``) and
by the purge that ends it (``trash_purge.py``, ``service/whatsapp/crm_purge.py``).

One period, ``tracking_trash_retention_days``: an item deleted at ``t`` is restorable while
``now < t + period`` and purgeable from ``t + period`` on, so no instant allows both a restore
and a purge of the same item (given the same clock).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from service.errors import ApiError

EXPIRED = "expired"
NOT_DELETED = "not_deleted"


def restorable_until(deleted_at: datetime, days: int) -> datetime:
    return deleted_at + timedelta(days=days)


def purge_cutoff(now: datetime, days: int) -> datetime:
    """Items deleted at or before this instant are past their period (purge them)."""
    return now - timedelta(days=days)


def check_restorable(deleted_at: datetime, now: datetime, days: int) -> None:
    """410 ``expired`` once the period is over (the item may not be purged yet)."""
    until = restorable_until(deleted_at, days)
    if now >= until:
        raise ApiError(
            410,
            EXPIRED,
            f"deleted more than {days} days ago: it can no longer be restored",
            {"deleted_at": deleted_at.isoformat(), "restorable_until": until.isoformat()},
        )


def not_deleted(what: str) -> ApiError:
    return ApiError(409, NOT_DELETED, f"the {what} is not deleted: there is nothing to restore")
