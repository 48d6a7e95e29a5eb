"""Reading the audit log: newest first, in keyset pages, for one site or for the platform.

``site_audit`` is what a site's owners (and platform admins) see at ``/t/sites/{id}/audit``:
the caller's scope is resolved first (a site that is not the caller's is 404, editors and
viewers are 403), then only records of that site are read. ``platform_audit`` is the admins'
view of every record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncConnection

from service.db import Database
from service.db.tables.foundation import audit_events
from service.tracking.access import Actor, require_manage, scope_for

E = audit_events


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What to list: every condition given must hold; ``after`` is the last id of the previous
    page (the next page holds older records)."""

    limit: int
    after: int | None = None
    action: str | None = None
    subject: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    site_id: int | None = None
    #: Only the platform's records (no site).
    platform: bool = False


def record_out(row: Any) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "site_id": None if row.site_id is None else int(row.site_id),
        "seq": int(row.seq),
        "ts": row.ts,
        "actor": row.actor,
        "action": row.action,
        "subject": row.subject,
        "request_id": row.request_id,
        "details": row.details,
        "before": row.state_before,
        "after": row.state_after,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


def _conditions(found: AuditFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if found.site_id is not None:
        conditions.append(E.c.site_id == found.site_id)
    if found.platform:
        conditions.append(E.c.site_id.is_(None))
    if found.after is not None:
        conditions.append(E.c.id < found.after)
    if found.action is not None:
        conditions.append(E.c.action == found.action)
    if found.subject is not None:
        conditions.append(E.c.subject == found.subject)
    if found.actor is not None:
        conditions.append(E.c.actor == found.actor)
    if found.since is not None:
        conditions.append(E.c.ts >= found.since)
    if found.until is not None:
        conditions.append(E.c.ts < found.until)
    return conditions


async def audit_page(conn: AsyncConnection, found: AuditFilter) -> dict[str, Any]:
    """One page, newest first, with ``next_after`` (null on the last page)."""
    query = select(E).where(*_conditions(found)).order_by(E.c.id.desc()).limit(found.limit)
    items = [record_out(row) for row in await conn.execute(query)]
    next_after = items[-1]["id"] if len(items) == found.limit else None
    return {"items": items, "next_after": next_after}


async def site_audit(
    db: Database, actor: Actor, site_id: int, found: AuditFilter
) -> dict[str, Any]:
    """The site's records for its owners and platform admins (``found.site_id`` is ignored:
    the site is the one the caller's scope names)."""
    async with db.connect() as conn:
        _site, scope = await scope_for(conn, actor, site_id)
        require_manage(scope)
        mine = AuditFilter(
            limit=found.limit,
            after=found.after,
            action=found.action,
            since=found.since,
            until=found.until,
            site_id=scope.site_id,
        )
        return await audit_page(conn, mine)


async def platform_audit(db: Database, found: AuditFilter) -> dict[str, Any]:
    async with db.connect() as conn:
        return await audit_page(conn, found)
