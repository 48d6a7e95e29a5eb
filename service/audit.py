"""The audit trail: who did what to which subject, written in the caller's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from service.db.tables.foundation import audit_events
from service.db.types import utcnow


async def record_audit(
    conn: AsyncConnection,
    *,
    actor: str,
    action: str,
    subject: str,
    details: dict[str, Any] | None = None,
    ts: datetime | None = None,
) -> None:
    await conn.execute(
        audit_events.insert().values(
            ts=ts or utcnow(), actor=actor, action=action, subject=subject, details=details
        )
    )


async def list_audit(
    conn: AsyncConnection,
    *,
    subject: str | None = None,
    action: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    query = select(audit_events).order_by(audit_events.c.id.desc()).limit(limit)
    if subject is not None:
        query = query.where(audit_events.c.subject == subject)
    if action is not None:
        query = query.where(audit_events.c.action == action)
    rows = (await conn.execute(query)).mappings().all()
    return [dict(r) for r in rows]
