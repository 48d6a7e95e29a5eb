"""Client event ids already stored: a resent event is stored once.

One multi-row insert that ignores ids already present and returns the ones that landed, so the
check and the claim are one statement: two batches carrying the same id at once cannot both win
(on MariaDB the second insert waits for the first transaction's row lock, then finds the
duplicate; SQLite has one writer). Rows are inserted in id order so that two batches sharing
several ids lock them in the same order.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from service.db.tables.tracking import track_event_ids
from service.tracking.scope import SiteScope, site_values, where_site


async def claim(
    conn: AsyncConnection,
    dialect: str,
    scope: SiteScope,
    event_ids: Iterable[str],
    now: datetime,
) -> set[str]:
    """Insert the ids' dedup rows; the ids that were new (their events are to be stored)."""
    rows = [site_values(scope, event_id=i, received_at=now) for i in sorted(set(event_ids))]
    if not rows:
        return set()
    column = track_event_ids.c.event_id
    if dialect == "sqlite":
        stmt = sqlite_insert(track_event_ids).on_conflict_do_nothing().returning(column)
    else:
        # IGNORE also turns other errors into warnings; the ids and times are validated before.
        stmt = mysql_insert(track_event_ids).prefix_with("IGNORE").returning(column)
    result = await conn.execute(stmt, rows)
    return {row[0] for row in result}


async def claim_many(
    conn: AsyncConnection,
    dialect: str,
    claims: Iterable[tuple[SiteScope, Iterable[str]]],
    now: datetime,
) -> set[tuple[int, str]]:
    """``claim`` for several batches (of one or more sites) in one statement: the
    ``(site_id, event_id)`` pairs that were new."""
    keys = sorted({(scope.site_id, i) for scope, ids in claims for i in ids})
    if not keys:
        return set()
    rows = [{"site_id": site, "event_id": i, "received_at": now} for site, i in keys]
    columns = (track_event_ids.c.site_id, track_event_ids.c.event_id)
    if dialect == "sqlite":
        stmt = sqlite_insert(track_event_ids).on_conflict_do_nothing().returning(*columns)
    else:
        stmt = mysql_insert(track_event_ids).prefix_with("IGNORE").returning(*columns)
    result = await conn.execute(stmt, rows)
    return {(int(row[0]), row[1]) for row in result}


async def release(conn: AsyncConnection, scope: SiteScope, event_ids: Iterable[str]) -> None:
    """Forget ids claimed in this transaction whose events are not stored after all."""
    ids = sorted(set(event_ids))
    if ids:
        await conn.execute(
            delete(track_event_ids).where(
                where_site(track_event_ids, scope), track_event_ids.c.event_id.in_(ids)
            )
        )
