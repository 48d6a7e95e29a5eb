"""Deleting what tracking no longer keeps, in bounded batches.

Each batch is one short transaction deleting at most ``BATCH`` rows chosen through an index
range and deleted by primary key, so a backlog of millions never holds a long lock beside live
ingest (the same on both databases). On MariaDB whole months of events go first by ``DROP
PARTITION`` (``service.tracking.partitions``); what the batches delete there is the rest: sites
with a shorter retention than the longest, and the partial month at the cutoff.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, select
from sqlalchemy.sql.elements import ColumnElement

from service.db import Database
from service.db.tables.tracking import (
    track_event_ids,
    track_events,
    track_idempotency,
    track_sessions,
)
from service.tracking.scope import ALL_SITES, SiteScope, where_site

BATCH = 5000
#: Keys per DELETE statement: a short IN list stays a primary-key range for MariaDB's optimizer,
#: which turns a long one (a large part of a small table) into a full scan.
DELETE_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Budget:
    """When a maintenance run stops starting new batches (monotonic seconds)."""

    monotonic: Callable[[], float]
    deadline: float

    @property
    def spent(self) -> bool:
        return self.monotonic() >= self.deadline


async def delete_in_batches(
    db: Database,
    table: Table,
    keys: list[ColumnElement[Any]],
    conditions: list[ColumnElement[bool]],
    budget: Budget,
    *,
    scope: SiteScope | None = None,
    prune: tuple[ColumnElement[bool], ...] = (),
) -> tuple[int, bool]:
    """Delete the rows matching ``conditions`` batch by batch; returns (rows deleted, whether
    all are gone: False when the budget ran out first).

    Each batch reads the keys of at most ``BATCH`` matching rows through the conditions' index
    (a covering read, no locks), then deletes exactly those rows by their primary key, so a
    batch locks only the rows it deletes. (A ``DELETE ... LIMIT`` lets MariaDB's optimizer
    choose a full scan once most rows match, locking every row it scans.) ``keys`` is the
    table's primary key (or its unique ``id``); ``scope``, the site the rows belong to
    (``None``: across sites); ``prune``, conditions the DELETE repeats so that MariaDB reads
    only the partitions that may hold the rows.
    """
    site = [] if scope is None else [where_site(table, scope)]
    removed = 0
    while True:
        async with db.begin() as conn:
            if scope is None:
                await conn.execution_options(**ALL_SITES)
            query = select(*keys).where(*site, *conditions).limit(BATCH)
            found = [tuple(row) for row in await conn.execute(query)]
            groups: dict[tuple[Any, ...], list[Any]] = {}
            for row in found:
                groups.setdefault(row[:-1], []).append(row[-1])
            # One DELETE per value of the leading key columns, the last one as an IN list: a
            # primary-key range on both databases (MariaDB scans the whole table for a list of
            # row values).
            for leading, last in groups.items():
                chosen = [c == v for c, v in zip(keys[:-1], leading, strict=True)]
                for at in range(0, len(last), DELETE_CHUNK):
                    some = keys[-1].in_(last[at : at + DELETE_CHUNK])
                    await conn.execute(delete(table).where(*site, *chosen, some, *prune))
        removed += len(found)
        if len(found) < BATCH:
            return removed, True
        if budget.spent:
            return removed, False


@dataclass(slots=True)
class Removed:
    events: int = 0
    sessions: int = 0
    event_ids: int = 0
    idempotency: int = 0
    complete: bool = True


async def expire_site(
    db: Database, scope: SiteScope, cutoff: datetime, budget: Budget, removed: Removed
) -> None:
    """A site's events received and sessions started before ``cutoff``."""
    e, s = track_events.c, track_sessions.c
    count, done = await delete_in_batches(
        db,
        track_events,
        [e.id],
        [e.received_at < cutoff],
        budget,
        scope=scope,
        prune=(e.received_at < cutoff,),
    )
    removed.events += count
    removed.complete &= done
    if not done:
        return
    count, done = await delete_in_batches(
        db,
        track_sessions,
        [s.id],
        [s.started_at < cutoff],
        budget,
        scope=scope,
    )
    removed.sessions += count
    removed.complete &= done


async def expire_bookkeeping(
    db: Database,
    *,
    dedup_before: datetime,
    idempotency_before: datetime,
    budget: Budget,
    removed: Removed,
) -> None:
    """Client event ids past the dedup window and Idempotency-Key answers past theirs, across
    sites (the rows are keyed by site, the expiry is not)."""
    ids, answers = track_event_ids.c, track_idempotency.c
    count, done = await delete_in_batches(
        db,
        track_event_ids,
        [ids.site_id, ids.event_id],
        [ids.received_at < dedup_before],
        budget,
    )
    removed.event_ids += count
    removed.complete &= done
    if not done:
        return
    count, done = await delete_in_batches(
        db,
        track_idempotency,
        [answers.site_id, answers.key],
        [answers.created_at < idempotency_before],
        budget,
    )
    removed.idempotency += count
    removed.complete &= done
