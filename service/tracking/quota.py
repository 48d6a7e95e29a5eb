"""The per-site monthly event quota and usage (``track_usage``: events and intents per month).

Every batch adds what it stored to its site's row of the month. The common case takes no lock
beyond the row update itself: the add is conditional (``events + n <= limit``) and is the
batch's last statement, so concurrent batches hold the row only for their commit. When the
condition fails (the month's first batch, or a batch that would cross the limit) the batch is
written again on the exact path: the row locked first, the room read, and what fits accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.db.tables.tracking import track_usage
from service.db.upsert import upsert_stmt
from service.settings import Settings
from service.tracking.scope import SiteScope, site_values, where_site
from service.tracking.sites import Site

_U = track_usage


@dataclass(frozen=True, slots=True)
class Usage:
    month: str
    events: int
    intents: int


def monthly_event_limit(site: Site, settings: Settings) -> int:
    """The site's own ``monthly_events`` (config) or the default."""
    return _config_limit(site.config.get("monthly_events"), settings.tracking_monthly_events)


def monthly_intent_limit(site: Site, settings: Settings) -> int:
    return _config_limit(site.config.get("monthly_intents"), settings.tracking_monthly_intents)


def _config_limit(value: Any, default: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10**12:
        return value
    return default


async def usage(conn: AsyncConnection, scope: SiteScope, month: str) -> Usage:
    """What the site used in ``month`` (``YYYY-MM``, UTC): for owners, and quota headers."""
    row = (
        await conn.execute(
            select(_U.c.events, _U.c.intents).where(where_site(_U, scope), _U.c.month == month)
        )
    ).first()
    return Usage(month, int(row.events), int(row.intents)) if row else Usage(month, 0, 0)


def _where(scope: SiteScope, month: str) -> Any:
    return (where_site(_U, scope), _U.c.month == month)


async def add_within(
    conn: AsyncConnection,
    dialect: str,
    scope: SiteScope,
    month: str,
    events: int,
    intents: int,
    limit: int,
) -> int | None:
    """Add to the month's counts if they stay within ``limit``: the new event count, or
    ``None`` (no row yet, or it would cross: take the exact path)."""
    stmt = update(_U).where(*_where(scope, month), _U.c.events + events <= limit)
    if dialect == "sqlite":
        result = await conn.execute(
            stmt.values(events=_U.c.events + events, intents=_U.c.intents + intents).returning(
                _U.c.events
            )
        )
        found = result.scalar_one_or_none()
        return None if found is None else int(found)
    # MariaDB has no UPDATE ... RETURNING: LAST_INSERT_ID(expr) hands the new value back in
    # the statement's own answer (the cursor's lastrowid), without another round trip.
    result = await conn.execute(
        stmt.values(
            events=func.last_insert_id(_U.c.events + events), intents=_U.c.intents + intents
        )
    )
    return int(result.lastrowid) if result.rowcount else None


async def lock(conn: AsyncConnection, dialect: str, scope: SiteScope, month: str) -> int:
    """Make sure the month's row exists, lock it, and return its event count (the exact path;
    on SQLite the insert takes the database's write lock)."""
    await conn.execute(
        upsert_stmt(
            dialect,
            _U,
            site_values(scope, month=month, events=0, intents=0, warned=False),
            index_elements=["site_id", "month"],
        )
    )
    found = (
        await conn.execute(select(_U.c.events).where(*_where(scope, month)).with_for_update())
    ).scalar_one()
    return int(found)


async def add(
    conn: AsyncConnection, scope: SiteScope, month: str, events: int, intents: int
) -> None:
    """Add to the month's (locked) row."""
    await conn.execute(
        update(_U)
        .where(*_where(scope, month))
        .values(events=_U.c.events + events, intents=_U.c.intents + intents)
    )
