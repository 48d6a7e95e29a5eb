"""Which days of a site the maintenance job rolls up on a run.

- Every closed local day (yesterday and before) from the site's first traffic on, once: the
  days after the last rolled one, at most ``MAX_NEW_DAYS`` a run (a backlog takes a few runs).
- The last ``RECENT_DAYS`` closed days again on every run: a session that started before
  midnight goes on after it, late batches arrive.
- The ``EXPIRING_DAYS`` oldest days still counted from raw rows again on every run: their raw
  rows are about to expire, and from then on dashboards read them from the rollup, so it holds
  the latest statuses of their intents (sealed sales) at that moment.

Days already past the raw horizon are never rolled: their raw rows may be partly gone.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from service.db.tables.tracking import track_intents, track_sessions
from service.tracking.dashboard_time import Period, local_date
from service.tracking.rollups import last_rolled_day
from service.tracking.rollups_horizon import Horizon
from service.tracking.scope import SiteScope, where_site

MAX_NEW_DAYS = 92
RECENT_DAYS = 2
EXPIRING_DAYS = 2
#: Days rolled in one transaction.
SPAN_DAYS = 31


async def first_traffic(conn: AsyncConnection, scope: SiteScope) -> datetime | None:
    """The earliest session start or intent of the site (both through their site index)."""
    found = [
        (
            await conn.execute(
                select(func.min(track_sessions.c.started_at)).where(
                    where_site(track_sessions, scope)
                )
            )
        ).scalar_one_or_none(),
        (
            await conn.execute(
                select(func.min(track_intents.c.created_at)).where(where_site(track_intents, scope))
            )
        ).scalar_one_or_none(),
    ]
    instants = [instant for instant in found if instant is not None]
    return min(instants) if instants else None


def _spans(first: date, last: date, zone: ZoneInfo) -> list[Period]:
    spans: list[Period] = []
    while first <= last:
        end = min(last, first + timedelta(days=SPAN_DAYS - 1))
        spans.append(Period(first, end, zone))
        first = end + timedelta(days=1)
    return spans


async def due_days(
    conn: AsyncConnection, scope: SiteScope, zone: ZoneInfo, horizon: Horizon, now: datetime
) -> list[Period]:
    """The spans of days to roll up now, oldest first."""
    last_closed = local_date(now, zone) - timedelta(days=1)
    earliest = await first_traffic(conn, scope)
    if earliest is None or last_closed < horizon.first_raw_day:
        return []
    floor = max(horizon.first_raw_day, local_date(earliest, zone))
    last_rolled = await last_rolled_day(conn, scope)
    days: set[date] = set()
    start = floor
    if last_rolled is not None:
        start = max(floor, min(last_rolled + timedelta(days=1), _recent(last_closed)))
        expiring_end = min(horizon.first_raw_day + timedelta(days=EXPIRING_DAYS - 1), last_rolled)
        days.update(_dates(floor, min(expiring_end, last_closed)))
    days.update(_dates(start, min(last_closed, start + timedelta(days=MAX_NEW_DAYS - 1))))
    return [span for first, last in _runs(sorted(days)) for span in _spans(first, last, zone)]


def _recent(last_closed: date) -> date:
    return last_closed - timedelta(days=RECENT_DAYS - 1)


def _dates(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _runs(days: list[date]) -> list[tuple[date, date]]:
    """Consecutive days as ``(first, last)`` runs."""
    runs: list[tuple[date, date]] = []
    for day in days:
        if runs and runs[-1][1] + timedelta(days=1) == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs
