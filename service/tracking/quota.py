"""The per-site monthly quotas of events and intents, and their usage (``track_usage``).

Every batch adds what it stored to its site's row of the month. The common case takes no lock
beyond the row update itself: the add is conditional (``events + n <= limit``, and
``intents + k <= limit`` when the batch made intents) and is the batch's last statement, so
concurrent batches hold the row only for their commit. When the condition fails (the month's
first batch, or a batch that would cross a limit) the batch is written again on the exact
path: the row locked first, the room read, and what fits accepted.

The row also remembers the highest warning level sent this month per kind
(``warned_events``, ``warned_intents``): raised by a conditional update in the transaction of
the batch that reached it, so exactly one batch sends each warning
(``service.tracking.quota_warning``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.db.tables.tracking import track_usage
from service.db.upsert import upsert_stmt
from service.settings import Settings
from service.tracking.scope import SiteScope, site_values, where_site
from service.tracking.sites import Site

_U = track_usage

Kind = Literal["events", "intents"]
KINDS: tuple[Kind, ...] = ("events", "intents")
#: The config keys by which a site sets its own limits (plan limits, set by platform admins).
CONFIG_KEYS: dict[Kind, str] = {"events": "monthly_events", "intents": "monthly_intents"}
MAX_LIMIT = 10**12
_WARNED = {"events": _U.c.warned_events, "intents": _U.c.warned_intents}


@dataclass(frozen=True, slots=True)
class Usage:
    month: str
    events: int
    intents: int
    #: The highest warning level sent this month per kind (0: none yet).
    warned_events: int = 0
    warned_intents: int = 0


@dataclass(frozen=True, slots=True)
class Counts:
    """The month's counts after a batch's add (``intents`` ``None``: not read back)."""

    events: int
    intents: int | None


@dataclass(frozen=True, slots=True)
class Limits:
    events: int
    intents: int

    def of(self, kind: Kind) -> int:
        return self.events if kind == "events" else self.intents


def is_limit(value: Any) -> bool:
    """What a site's ``monthly_events`` / ``monthly_intents`` may be: a whole number 0..10^12."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_LIMIT


def monthly_event_limit(site: Site, settings: Settings) -> int:
    """The site's own ``monthly_events`` (config) or the default."""
    return _config_limit(site.config.get("monthly_events"), settings.tracking_monthly_events)


def monthly_intent_limit(site: Site, settings: Settings) -> int:
    return _config_limit(site.config.get("monthly_intents"), settings.tracking_monthly_intents)


def limits_of(site: Site, settings: Settings) -> Limits:
    return Limits(monthly_event_limit(site, settings), monthly_intent_limit(site, settings))


def limit_source(site: Site, kind: Kind) -> Literal["site", "default"]:
    """Whether the site's config sets the limit (its plan) or the server's default applies."""
    return "site" if is_limit(site.config.get(CONFIG_KEYS[kind])) else "default"


def _config_limit(value: Any, default: int) -> int:
    return value if is_limit(value) else default


async def usage(conn: AsyncConnection, scope: SiteScope, month: str) -> Usage:
    """What the site used in ``month`` (``YYYY-MM``, UTC): for owners, and quota headers."""
    row = (
        await conn.execute(
            select(_U.c.events, _U.c.intents, _U.c.warned_events, _U.c.warned_intents).where(
                where_site(_U, scope), _U.c.month == month
            )
        )
    ).first()
    if row is None:
        return Usage(month, 0, 0)
    return Usage(
        month,
        int(row.events),
        int(row.intents),
        int(row.warned_events),
        int(row.warned_intents),
    )


async def history(conn: AsyncConnection, scope: SiteScope, before: str, months: int) -> list[Usage]:
    """The site's usage of up to ``months`` months before ``before``, newest first."""
    rows = await conn.execute(
        select(_U.c.month, _U.c.events, _U.c.intents, _U.c.warned_events, _U.c.warned_intents)
        .where(where_site(_U, scope), _U.c.month < before)
        .order_by(_U.c.month.desc())
        .limit(months)
    )
    return [
        Usage(
            str(r.month),
            int(r.events),
            int(r.intents),
            int(r.warned_events),
            int(r.warned_intents),
        )
        for r in rows
    ]


def _where(scope: SiteScope, month: str) -> Any:
    return (where_site(_U, scope), _U.c.month == month)


async def add_within(
    conn: AsyncConnection,
    dialect: str,
    scope: SiteScope,
    month: str,
    events: int,
    intents: int,
    limits: Limits,
) -> Counts | None:
    """Add to the month's counts if they stay within ``limits``: the new counts, or ``None``
    (no row yet, or one would cross: take the exact path). The intent limit is a condition
    only for a batch that made intents: one without never crosses it."""
    conditions = [*_where(scope, month), _U.c.events + events <= limits.events]
    if intents:
        conditions.append(_U.c.intents + intents <= limits.intents)
    stmt = update(_U).where(*conditions)
    if dialect == "sqlite":
        found = (
            await conn.execute(
                stmt.values(events=_U.c.events + events, intents=_U.c.intents + intents).returning(
                    _U.c.events, _U.c.intents
                )
            )
        ).first()
        return None if found is None else Counts(int(found.events), int(found.intents))
    # MariaDB has no UPDATE ... RETURNING: LAST_INSERT_ID(expr) hands the new value back in
    # the statement's own answer (the cursor's lastrowid), without another round trip.
    result = await conn.execute(
        stmt.values(
            events=func.last_insert_id(_U.c.events + events), intents=_U.c.intents + intents
        )
    )
    if not result.rowcount:
        return None
    if not intents:
        return Counts(int(result.lastrowid), None)
    # A batch with intents (a few in a hundred) reads the row it holds locked for the count.
    found = (await conn.execute(select(_U.c.intents).where(*_where(scope, month)))).scalar_one()
    return Counts(int(result.lastrowid), int(found))


async def lock(conn: AsyncConnection, dialect: str, scope: SiteScope, month: str) -> Counts:
    """Make sure the month's row exists, lock it, and return its counts (the exact path; on
    SQLite the insert takes the database's write lock)."""
    await conn.execute(
        upsert_stmt(
            dialect,
            _U,
            site_values(
                scope,
                month=month,
                events=0,
                intents=0,
                warned=False,
                warned_events=0,
                warned_intents=0,
            ),
            index_elements=["site_id", "month"],
        )
    )
    found = (
        await conn.execute(
            select(_U.c.events, _U.c.intents).where(*_where(scope, month)).with_for_update()
        )
    ).one()
    return Counts(int(found.events), int(found.intents))


async def add(
    conn: AsyncConnection, scope: SiteScope, month: str, events: int, intents: int
) -> None:
    """Add to the month's (locked) row."""
    await conn.execute(
        update(_U)
        .where(*_where(scope, month))
        .values(events=_U.c.events + events, intents=_U.c.intents + intents)
    )


async def raise_warned(
    conn: AsyncConnection, scope: SiteScope, month: str, kind: Kind, level: int
) -> bool:
    """Mark ``level`` warned for ``kind`` this month unless it (or a higher one) was: True for
    the one transaction that raised it, which sends the warning. Concurrent transactions wait
    on the row's lock, then find the level taken."""
    column = _WARNED[kind]
    result = await conn.execute(
        update(_U).where(*_where(scope, month), column < level).values({column.name: level})
    )
    return bool(result.rowcount)
