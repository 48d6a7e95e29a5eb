"""Emptying the tracking trash: sites and intents deleted longer ago than the retention period
(``tracking_trash_retention_days``) are removed for good, in bounded batches.

- A site goes with all its data: every site-scoped table (``SITE_SCOPED``: members, sessions,
  events and their ids, intents, idempotency answers, usage, daily rollups, calls, Google Ads
  connection, uploads and attempts - a table added there later is purged too), table by table,
  then the site row itself with one ``site.purged`` audit record. The people stay (they may
  belong to other sites), and so does the audit log (append-only).
- An intent goes with its Google Ads upload state and attempts; a call matched to it stays,
  unmatched. One ``intent.purged`` audit record per intent.

Each batch is one short transaction of at most ``batch`` rows chosen through an index and
deleted by key in chunks (as ``maintenance_retention`` does; events by id within the batch's
``received_at`` range, so MariaDB reads only the partitions that hold them). Every batch first
locks the site's row (``_lock_site``) and checks what it purges is still deleted and past its
period, so a restore (refused past the period anyway) can never race a purge, and two processes
purging at once take turns:
what one removed the other no longer finds, and the audit record of an item is written only by
the transaction that removes it. The work stops starting new batches when the run's budget is
spent; the next run goes on where it stopped (purging is idempotent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.audit import record_audit
from service.db import Database
from service.db.tables.ads import ads_attempts, ads_uploads
from service.db.tables.tracking import SITE_SCOPED, sites, track_calls, track_events, track_intents
from service.tracking.maintenance_retention import Budget
from service.tracking.scope import SiteScope, where_site
from service.tracking.trash_window import purge_cutoff

#: Rows chosen per batch (site data), and intents per batch (each with its audit record).
BATCH = 2000
INTENT_BATCH = 200
#: Keys per DELETE statement (a short IN list stays a primary-key range on MariaDB).
DELETE_CHUNK = 500
PURGE_ACTOR = "system:trash"
#: Columns that choose MariaDB's partitions of a table (a DELETE repeats their range).
PARTITIONED_BY: dict[str, str] = {track_events.name: "received_at"}


@dataclass(slots=True)
class Purged:
    sites: int = 0
    intents: int = 0
    #: Rows of purged sites' data, by table.
    rows: dict[str, int] = field(default_factory=dict)
    contacts: int = 0
    notes: int = 0
    #: False when the budget ran out first (the next run goes on).
    complete: bool = True

    @property
    def did_something(self) -> bool:
        return bool(self.sites or self.intents or self.contacts or self.notes or self.rows)


def _scope(site_id: int) -> SiteScope:
    return SiteScope(site_id=site_id, role="admin", actor=PURGE_ACTOR)


def _chunks(values: list[Any]) -> list[list[Any]]:
    return [values[at : at + DELETE_CHUNK] for at in range(0, len(values), DELETE_CHUNK)]


async def purge_tracking(
    db: Database,
    now: datetime,
    days: int,
    budget: Budget,
    purged: Purged,
    *,
    batch: int = BATCH,
    intent_batch: int = INTENT_BATCH,
) -> None:
    """Purge the sites, then the intents of the remaining sites, deleted ``days`` or more
    before ``now``."""
    cutoff = purge_cutoff(now, days)
    async with db.connect() as conn:
        rows = (
            await conn.execute(select(sites.c.id, sites.c.deleted_at).order_by(sites.c.id))
        ).all()
    remaining: list[int] = []
    for row in rows:
        if row.deleted_at is None or row.deleted_at > cutoff:
            remaining.append(int(row.id))
            continue
        if budget.spent:
            purged.complete = False
            return
        if await purge_site(db, int(row.id), now, cutoff, budget, purged, batch=batch):
            purged.sites += 1
    for site_id in remaining:
        if budget.spent:
            purged.complete = False
            return
        await purge_intents(db, _scope(site_id), now, cutoff, budget, purged, batch=intent_batch)


async def _lock_site(conn: AsyncConnection, site_id: int) -> None:
    """Take the site's row first, with a write that changes nothing: a row lock on MariaDB, the
    database's write lock on SQLite (whose driver would otherwise begin the transaction only at
    its first write, after the reads that chose what to purge). Purges of one site take turns."""
    await conn.execute(
        update(sites).where(sites.c.id == site_id).values(updated_at=sites.c.updated_at)
    )


async def _purgeable_site(conn: AsyncConnection, site_id: int, cutoff: datetime) -> Any:
    """The site's row, locked, while it is deleted and past its period (else None)."""
    await _lock_site(conn, site_id)
    query = select(sites).where(
        sites.c.id == site_id, sites.c.deleted_at.is_not(None), sites.c.deleted_at <= cutoff
    )
    return (await conn.execute(query)).first()


async def purge_site(
    db: Database,
    site_id: int,
    now: datetime,
    cutoff: datetime,
    budget: Budget,
    purged: Purged,
    *,
    batch: int = BATCH,
) -> bool:
    """Remove a deleted site's data, then the site; True when this call removed the site
    (False: the budget ran out, or it is no longer a site to purge)."""
    scope = _scope(site_id)
    counts: dict[str, int] = {}
    # Children before parents; the members last, so its owners keep seeing it in their trash
    # until the very end.
    for table in reversed(SITE_SCOPED):
        removed, done = await _purge_site_table(db, table, scope, cutoff, budget, batch)
        counts[table.name] = removed
        purged.rows[table.name] = purged.rows.get(table.name, 0) + removed
        if not done:
            purged.complete &= not budget.spent
            return False
    async with db.begin() as conn:
        site = await _purgeable_site(conn, site_id, cutoff)
        if site is None:
            return False
        gone = await conn.execute(delete(sites).where(sites.c.id == site_id))
        if gone.rowcount != 1:
            return False
        await record_audit(
            conn,
            actor=PURGE_ACTOR,
            action="site.purged",
            subject=f"site:{site_id}",
            details={
                "site_id": site_id,
                "name": site.name,
                "deleted_at": site.deleted_at.isoformat(),
                "rows": {name: count for name, count in counts.items() if count},
            },
            ts=now,
        )
    return True


async def _purge_site_table(
    db: Database, table: Table, scope: SiteScope, cutoff: datetime, budget: Budget, batch: int
) -> tuple[int, bool]:
    """Every row of ``table`` of the site, batch by batch: (rows removed, whether all are
    gone; False when the budget ran out or the site is no longer one to purge)."""
    keys = [c for c in table.primary_key.columns if c.name != "site_id"]
    site = where_site(table, scope)
    removed = 0
    while True:
        async with db.begin() as conn:
            if await _purgeable_site(conn, scope.site_id, cutoff) is None:
                return removed, False
            if not keys:  # keyed by the site alone: one row
                result = await conn.execute(delete(table).where(site))
                return removed + int(result.rowcount or 0), True
            found = await _delete_some(conn, table, site, keys[0], batch)
            removed += found.deleted
        if found.chosen < batch:
            return removed, True
        if budget.spent:
            return removed, False


@dataclass(frozen=True, slots=True)
class _Deleted:
    chosen: int  # rows the batch chose
    deleted: int  # rows its deletes removed (a key may name several)


async def _delete_some(
    conn: AsyncConnection, table: Table, site: Any, key: Column[Any], batch: int
) -> _Deleted:
    """Choose up to ``batch`` of the site's rows through the site's index, delete them by
    their key: a key column that is not unique alone (a rollup's day) deletes all its rows."""
    partition = PARTITIONED_BY.get(table.name)
    columns: list[Any] = [key] if partition is None else [key, table.c[partition]]
    rows = (await conn.execute(select(*columns).where(site).limit(batch))).all()
    by_key: dict[Any, list[Any]] = {}
    for row in rows:
        by_key.setdefault(row[0], []).append(row[1] if partition is not None else None)
    deleted = 0
    for chunk in _chunks(sorted(by_key)):
        conditions = [site, key.in_(chunk)]
        if partition is not None:
            at = [value for k in chunk for value in by_key[k]]
            column = table.c[partition]
            conditions += [column >= min(at), column <= max(at)]
        result = await conn.execute(delete(table).where(*conditions))
        deleted += int(result.rowcount or 0)
    return _Deleted(len(rows), deleted)


async def purge_intents(
    db: Database,
    scope: SiteScope,
    now: datetime,
    cutoff: datetime,
    budget: Budget,
    purged: Purged,
    *,
    batch: int = INTENT_BATCH,
) -> bool:
    """The site's intents deleted at or before ``cutoff``; True when none is left."""
    i = track_intents.c
    while True:
        async with db.begin() as conn:
            # A concurrent purge of the site waits here, then finds these rows gone.
            await _lock_site(conn, scope.site_id)
            query = (
                select(i.id, i.status, i.deleted_at)
                .where(where_site(track_intents, scope), i.deleted_at.is_not(None))
                .where(i.deleted_at <= cutoff)
                .limit(batch)
            )
            rows = (await conn.execute(query)).all()
            for chunk in _chunks([int(row.id) for row in rows]):
                await _remove_intents(conn, scope, chunk)
            for row in rows:
                await record_audit(
                    conn,
                    actor=PURGE_ACTOR,
                    action="intent.purged",
                    subject=f"site:{scope.site_id}",
                    details={
                        "site_id": scope.site_id,
                        "intent": int(row.id),
                        "status": row.status,
                        "deleted_at": row.deleted_at.isoformat(),
                    },
                    ts=now,
                )
        purged.intents += len(rows)
        if len(rows) < batch:
            return True
        if budget.spent:
            purged.complete = False
            return False


async def _remove_intents(conn: AsyncConnection, scope: SiteScope, ids: list[int]) -> None:
    await conn.execute(
        delete(ads_attempts).where(
            where_site(ads_attempts, scope), ads_attempts.c.intent_id.in_(ids)
        )
    )
    await conn.execute(
        delete(ads_uploads).where(where_site(ads_uploads, scope), ads_uploads.c.intent_id.in_(ids))
    )
    await conn.execute(
        update(track_calls)
        .where(where_site(track_calls, scope), track_calls.c.intent_id.in_(ids))
        .values(intent_id=None)
    )
    await conn.execute(
        delete(track_intents).where(
            where_site(track_intents, scope),
            track_intents.c.id.in_(ids),
            track_intents.c.deleted_at.is_not(None),
        )
    )
