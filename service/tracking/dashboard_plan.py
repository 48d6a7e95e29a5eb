"""Where each day of a dashboard range is counted from, and the figures gathered accordingly.

Three kinds of days:

- **expired**: before the site's raw horizon (``rollups_horizon``): raw rows may be gone, so
  every figure comes from the daily rollups;
- **rolled**: in a range longer than ``EXACT_RANGE_DAYS``, the closed days the maintenance job
  has rolled up: session figures from the rollups (a year of sessions is a year of raw rows,
  its rollups a few hundred rows), intent figures from the intents themselves (few, kept, and
  sealed long after their day: their latest status always shows);
- **raw**: everything else (ranges up to ``EXACT_RANGE_DAYS``, and days not rolled up yet):
  counted from raw rows, exactly.

Daily figures are the same either way (``test_rollups``); distinct visitors alone do not add
up over days, so a range with any day of the first two kinds counts them per day and says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from service.tracking.dashboard_metrics import (
    Aggregate,
    Key,
    Metrics,
    intent_figures,
    merge,
    session_figures,
)
from service.tracking.dashboard_time import LocalClock, Period
from service.tracking.rollups import RollupDimension, last_rolled_day, rolled_metrics
from service.tracking.rollups_horizon import Horizon
from service.tracking.scope import SiteScope

#: Ranges up to this many days are counted from raw rows wherever those are kept.
EXACT_RANGE_DAYS = 31
SESSION_FIELDS = ("sessions", "visitors", "page_views", "ads_sessions")
INTENT_FIELDS = tuple(f.name for f in fields(Metrics) if f.name not in SESSION_FIELDS)


def _part(metrics: Metrics, names: tuple[str, ...]) -> Metrics:
    part = Metrics()
    for name in names:
        setattr(part, name, getattr(metrics, name))
    return part


@dataclass(frozen=True, slots=True)
class Plan:
    expired: Period | None
    rolled: Period | None
    raw: Period | None

    @property
    def exact_visitors(self) -> bool:
        per_day = [p for p in (self.expired, self.rolled) if p is not None]
        return not per_day or (self.raw is None and sum(p.days for p in per_day) == 1)

    def rollup_days(self) -> Period | None:
        """The days read (wholly or for their sessions) from rollups."""
        parts = [p for p in (self.expired, self.rolled) if p is not None]
        if not parts:
            return None
        return Period(parts[0].first, parts[-1].last, parts[0].zone)


async def plan_for(
    conn: AsyncConnection, scope: SiteScope, horizon: Horizon, period: Period
) -> Plan:
    expired, kept = horizon.split(period)
    if kept is None or period.days <= EXACT_RANGE_DAYS:
        return Plan(expired, None, kept)
    last_rolled = await last_rolled_day(conn, scope)
    if last_rolled is None or last_rolled < kept.first:
        return Plan(expired, None, kept)
    end = min(last_rolled, kept.last)
    rolled = Period(kept.first, end, kept.zone)
    raw = Period(end + timedelta(days=1), kept.last, kept.zone) if end < kept.last else None
    return Plan(expired, rolled, raw)


KeysOf = Callable[[LocalClock], list[ColumnElement[Any]]]


@dataclass(frozen=True, slots=True)
class Grouping:
    """How figures are keyed: raw rows by SQL expressions, rollup rows by day and value."""

    session_keys: KeysOf
    intent_keys: KeysOf
    #: A raw row's key -> the key the caller wants.
    raw_key: Callable[[LocalClock, Key], Key]
    #: The rollup dimension read ("all" for totals and timelines).
    dimension: RollupDimension
    by_day: bool
    #: A rollup row's key (``(value,)`` or ``(day index, value)``) -> the key the caller wants.
    rolled_key: Callable[[Key], Key]


async def gather(
    conn: AsyncConnection,
    scope: SiteScope,
    plan: Plan,
    grouping: Grouping,
    *,
    with_ads: bool,
) -> dict[Key, Aggregate]:
    """Figures of every key over the plan's days (ads figures too with ``with_ads``)."""
    found: dict[Key, Aggregate] = {}

    def put(key: Key, every: Metrics | None, ads: Metrics | None) -> None:
        target = found.setdefault(key, Aggregate())
        if every is not None:
            target.all.add(every)
        if ads is not None:
            target.ads.add(ads)

    dialect = conn.dialect.name
    for period, sessions in ((plan.raw, True), (plan.rolled, False)):
        if period is None:
            continue
        clock = LocalClock.over(period.zone, period.start, period.end, dialect)
        parts = [
            await intent_figures(conn, scope, period.start, period.end, grouping.intent_keys(clock))
        ]
        if sessions:
            parts.append(
                await session_figures(
                    conn, scope, period.start, period.end, grouping.session_keys(clock)
                )
            )
        for key, aggregate in merge(*parts).items():
            put(grouping.raw_key(clock, key), aggregate.all, aggregate.ads)
    for period, names in ((plan.rolled, SESSION_FIELDS), (plan.expired, None)):
        if period is None:
            continue
        dimensions: list[tuple[RollupDimension, bool]] = [(grouping.dimension, False)]
        if with_ads:
            dimensions.append(("ads", True))
        for dimension, ads in dimensions:
            rows = await rolled_metrics(
                conn, scope, period.first, period.last, dimension, by_day=grouping.by_day
            )
            for key, metrics in rows.items():
                part = metrics if names is None else _part(metrics, names)
                put(grouping.rolled_key(key), None if ads else part, part if ads else None)
    return found
