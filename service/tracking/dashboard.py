"""The dashboard of one site over a range of its local days: KPIs, a timeline and breakdowns.

Each day is counted from raw rows or read from the daily rollups as ``dashboard_plan`` decides
(rollups for days whose raw rows retention may have removed, and for the sessions of closed days
in ranges longer than a month); both give the same ``Metrics`` per day. Every answer says which
days came from where, and whether its visitors are distinct over the whole range
(``visitors_exact``) or counted per day. Hour buckets exist only for days whose raw rows are
kept.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from core.errors import ValidationFailed
from service.db import Database
from service.db.tables.tracking import track_intents, track_sessions
from service.tracking.access import Actor, scope_for
from service.tracking.dashboard_metrics import Aggregate, Dimension, Metrics, dimension_key
from service.tracking.dashboard_plan import Grouping, Plan, gather, plan_for
from service.tracking.dashboard_time import (
    Bucket,
    LocalClock,
    Period,
    bucket_slots,
    day_start,
    local_date,
)
from service.tracking.rollups import total
from service.tracking.rollups_horizon import Horizon, retention_months
from service.tracking.scope import SiteScope
from service.tracking.sites import Site

DEFAULT_RANGE_DAYS = 30
MAX_RANGE_DAYS = 3660
MAX_HOUR_RANGE_DAYS = 31
EARLIEST_DAY = date(2000, 1, 1)
LATEST_DAY = date(2100, 12, 31)
DEFAULT_TOP = 10
MAX_TOP = 100

#: The rules a range must follow (quoted by the 422 refusing it, listed in /openapi.json).
RULE_ORDER = "'from' is not after 'to'"
RULE_LENGTH = f"a range spans at most {MAX_RANGE_DAYS} days"
RULE_BOUNDS = f"dates lie between {EARLIEST_DAY} and {LATEST_DAY}"
RULE_HOURS = f"hour buckets cover at most {MAX_HOUR_RANGE_DAYS} days"
RULE_HOURS_RAW = "hour buckets exist only for days whose raw events are kept"
RANGE_RULES = (RULE_ORDER, RULE_LENGTH, RULE_BOUNDS)


@dataclass(frozen=True, slots=True)
class SiteView:
    """One site as its dashboard sees it at one moment."""

    scope: SiteScope
    zone: ZoneInfo
    horizon: Horizon
    today: date

    @classmethod
    def of(cls, site: Site, scope: SiteScope, *, now: datetime, retention: int) -> SiteView:
        zone = ZoneInfo(site.time_zone)
        months = retention_months(site.config, retention)
        return cls(scope, zone, Horizon.of(now, months, zone), local_date(now, zone))


def period_of(view: SiteView, first: date | None, last: date | None) -> Period:
    """The range asked for: ``to`` defaults to today, ``from`` to 30 days before ``to``."""
    if last is None:
        last = max(view.today, first) if first is not None else view.today
    if first is None:
        first = last - timedelta(days=DEFAULT_RANGE_DAYS - 1)
    for day in (first, last):
        if not EARLIEST_DAY <= day <= LATEST_DAY:
            raise ValidationFailed(f"{day} is out of range: {RULE_BOUNDS}")
    if first > last:
        raise ValidationFailed(f"{first} is after {last}: {RULE_ORDER}")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise ValidationFailed(f"the range is too long: {RULE_LENGTH}")
    return Period(first, last, view.zone)


def open_bounds(
    view: SiteView, first: date | None, last: date | None
) -> tuple[datetime | None, datetime | None]:
    """UTC bounds of local days ``first`` to ``last`` where either end may stay open (the intent
    ledger's date filter)."""
    for day in (first, last):
        if day is not None and not EARLIEST_DAY <= day <= LATEST_DAY:
            raise ValidationFailed(f"{day} is out of range: {RULE_BOUNDS}")
    if first is not None and last is not None and first > last:
        raise ValidationFailed(f"{first} is after {last}: {RULE_ORDER}")
    start = None if first is None else day_start(first, view.zone)
    end = None if last is None else day_start(last + timedelta(days=1), view.zone)
    return start, end


def _days(period: Period | None) -> dict[str, str] | None:
    return None if period is None else {"from": str(period.first), "to": str(period.last)}


def _frame(view: SiteView, period: Period, plan: Plan) -> dict[str, Any]:
    return {
        "site_id": view.scope.site_id,
        "from": str(period.first),
        "to": str(period.last),
        "time_zone": view.zone.key,
        "currency": view.scope.currency,
        "rollup_days": _days(plan.rollup_days()),
        "expired_days": _days(plan.expired),
        "raw_days": _days(plan.raw),
        "visitors_exact": plan.exact_visitors,
    }


def _unkeyed(clock: LocalClock) -> list[ColumnElement[Any]]:
    return []


TOTALS = Grouping(
    session_keys=_unkeyed,
    intent_keys=_unkeyed,
    raw_key=lambda clock, key: (),
    dimension="all",
    by_day=False,
    rolled_key=lambda key: (),
)
DAYS = Grouping(
    session_keys=lambda clock: [clock.day_index(track_sessions.c.started_at)],
    intent_keys=lambda clock: [clock.day_index(track_intents.c.created_at)],
    raw_key=lambda clock, key: (int(key[0]),),
    dimension="all",
    by_day=True,
    rolled_key=lambda key: (key[0],),
)
HOURS = Grouping(
    session_keys=lambda clock: clock.hour_keys(track_sessions.c.started_at),
    intent_keys=lambda clock: clock.hour_keys(track_intents.c.created_at),
    raw_key=lambda clock, key: clock.hour_key(key),
    dimension="all",
    by_day=False,
    rolled_key=lambda key: key,  # never read: hours exist only for raw days
)


def by_value(dimension: Dimension) -> Grouping:
    key = dimension_key(dimension)
    return Grouping(
        session_keys=lambda clock: [key],
        intent_keys=lambda clock: [key],
        raw_key=lambda clock, found: (str(found[0]),),
        dimension=dimension,
        by_day=False,
        rolled_key=lambda found: (str(found[0]),),
    )


async def kpis(conn: AsyncConnection, view: SiteView, period: Period) -> dict[str, Any]:
    """Totals of the range: all traffic, and ads traffic alone."""
    plan = await plan_for(conn, view.scope, view.horizon, period)
    found = (await gather(conn, view.scope, plan, TOTALS, with_ads=True)).get((), Aggregate())
    return {
        **_frame(view, period, plan),
        "totals": found.all.to_json(),
        "ads": found.ads.to_json(),
    }


async def timeline(
    conn: AsyncConnection, view: SiteView, period: Period, bucket: Bucket, *, ads_only: bool
) -> dict[str, Any]:
    """Every hour or day of the range (empty ones too), in the site's local time."""
    if bucket == "hour":
        if period.days > MAX_HOUR_RANGE_DAYS:
            raise ValidationFailed(f"the range is too long for hours: {RULE_HOURS}")
        if period.first < view.horizon.first_raw_day:
            raise ValidationFailed(
                f"days before {view.horizon.first_raw_day} are kept as daily rollups only: "
                f"{RULE_HOURS_RAW}"
            )
    plan = await plan_for(conn, view.scope, view.horizon, period)
    grouping = DAYS if bucket == "day" else HOURS
    found = await gather(conn, view.scope, plan, grouping, with_ads=ads_only)
    buckets = []
    for slot in bucket_slots(period, bucket):
        aggregate = found.get(slot.key, Aggregate())
        metrics = aggregate.ads if ads_only else aggregate.all
        buckets.append({"start": slot.start.isoformat(), **metrics.to_json()})
    return {
        **_frame(view, period, plan),
        "visitors_exact": True,  # a bucket is one day or one hour
        "bucket": bucket,
        "ads_only": ads_only,
        "buckets": buckets,
    }


def _rank(item: tuple[str, Metrics]) -> tuple[int, int, int, str]:
    value, m = item
    return (-m.sessions, -(m.phone_intents + m.whatsapp_intents), -m.sales, value)


async def breakdown(
    conn: AsyncConnection, view: SiteView, period: Period, dimension: Dimension, top: int
) -> dict[str, Any]:
    """The ``top`` values of ``dimension`` by sessions (then intents), and the rest summed as
    ``other``. A value's visitors are distinct within it; ``other`` adds its values' visitors."""
    plan = await plan_for(conn, view.scope, view.horizon, period)
    found = await gather(conn, view.scope, plan, by_value(dimension), with_ads=False)
    ranked = sorted(((str(key[0]), a.all) for key, a in found.items()), key=_rank)
    shown, rest = ranked[:top], ranked[top:]
    other = total(m for _, m in rest) if rest else None
    return {
        **_frame(view, period, plan),
        "dimension": dimension,
        "values": len(ranked),
        "rows": [{"value": value or None, **m.to_json()} for value, m in shown],
        "other": None if other is None else {"values": len(rest), **other.to_json()},
    }


#: A dashboard read: it gets the connection the caller's scope was resolved on.
Reader = Callable[[AsyncConnection, SiteView], Awaitable[Any]]


async def read_site(
    db: Database, actor: Actor, site_id: int, *, now: datetime, retention: int, read: Reader
) -> Any:
    """Resolve ``actor``'s view of the site (404 when it may not see it), then ``read`` on the
    same connection, so the scope and the figures come from one snapshot of access."""
    async with db.connect() as conn:
        site, scope = await scope_for(conn, actor, site_id)
        return await read(conn, SiteView.of(site, scope, now=now, retention=retention))
