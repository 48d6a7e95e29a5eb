"""Daily rollups (``track_daily``): each local day of a site counted once from raw rows, so that
dashboards still answer for days whose raw events and sessions retention has removed.

A rolled day has one row per dimension value: ``all`` (value ``''``, written even for a day
without traffic: it marks the day as rolled), ``ads`` (value ``'1'``: the ads traffic alone,
when there was some), and ``source``, ``device``, ``landing`` and ``country`` (one row per value
seen). Every row holds a ``Metrics`` counted by ``service.tracking.dashboard_metrics``: the same
queries the dashboard runs on raw rows, grouped by local day.

Rolling a day replaces its rows, so the maintenance job may roll a day again (late sessions,
intents sealed later) until its raw rows expire.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from datetime import date
from typing import Any, Literal

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from service.db.tables.tracking import track_daily, track_intents, track_sessions
from service.db.upsert import upsert_stmt
from service.tracking.dashboard_metrics import (
    DIMENSIONS,
    VALUE_LENGTH,
    Aggregate,
    Dimension,
    Key,
    Metrics,
    dimension_key,
    intent_figures,
    merge,
    money,
    session_figures,
)
from service.tracking.dashboard_time import LocalClock, Period, date_of_index, index_of_date
from service.tracking.scope import SiteScope, site_values, where_site

RollupDimension = Literal["all", "ads", "source", "device", "landing", "country"]
ALL_VALUE = ""
ADS_VALUE = "1"
#: Rows per INSERT statement.
INSERT_CHUNK = 500
METRIC_COLUMNS = tuple(f.name for f in fields(Metrics))


def _row(scope: SiteScope, day: date, dimension: str, value: str, m: Metrics) -> dict[str, Any]:
    metrics = {name: getattr(m, name) for name in METRIC_COLUMNS}
    return site_values(scope, day=day, dimension=dimension, value=value[:VALUE_LENGTH], **metrics)


async def _figures(
    conn: AsyncConnection, scope: SiteScope, clock: LocalClock, period: Period, by: Dimension | None
) -> dict[Key, Aggregate]:
    """Raw figures of ``period`` per local day (and per value of ``by``)."""
    start, end = period.start, period.end
    session_keys: list[ColumnElement[Any]] = [clock.day_index(track_sessions.c.started_at)]
    intent_keys: list[ColumnElement[Any]] = [clock.day_index(track_intents.c.created_at)]
    if by is not None:
        session_keys.append(dimension_key(by))
        intent_keys.append(dimension_key(by))
    found = merge(
        await session_figures(conn, scope, start, end, session_keys),
        await intent_figures(conn, scope, start, end, intent_keys),
    )
    # MariaDB's FLOOR() answers a DECIMAL: day indexes are made ints again here.
    return {(int(key[0]), *key[1:]): aggregate for key, aggregate in found.items()}


async def rollup_rows(
    conn: AsyncConnection, scope: SiteScope, period: Period
) -> list[dict[str, Any]]:
    """The ``track_daily`` rows of every day of ``period``, counted from raw rows."""
    dialect = conn.dialect.name
    clock = LocalClock.over(period.zone, period.start, period.end, dialect)
    rows: list[dict[str, Any]] = []
    totals = await _figures(conn, scope, clock, period, None)
    for day in period.dates():
        aggregate = totals.get((index_of_date(day),), Aggregate())
        rows.append(_row(scope, day, "all", ALL_VALUE, aggregate.all))
        if not aggregate.ads.empty:
            rows.append(_row(scope, day, "ads", ADS_VALUE, aggregate.ads))
    for dimension in DIMENSIONS:
        per_value = await _figures(conn, scope, clock, period, dimension)
        for (index, value), aggregate in sorted(per_value.items()):
            rows.append(_row(scope, date_of_index(index), dimension, value, aggregate.all))
    return rows


async def roll_days(conn: AsyncConnection, scope: SiteScope, period: Period) -> int:
    """Count every day of ``period`` from raw rows and replace its rollup rows (run it in one
    transaction); returns the rows written."""
    rows = await rollup_rows(conn, scope, period)
    await conn.execute(
        delete(track_daily).where(
            where_site(track_daily, scope),
            track_daily.c.day >= period.first,
            track_daily.c.day <= period.last,
        )
    )
    await _insert(conn, rows)
    return len(rows)


async def _insert(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    # Two values that the database's collation takes for one (MariaDB compares case- and
    # trailing-space-insensitively) add up instead of failing the day's rollup.
    additive = {name: _add_to(name) for name in METRIC_COLUMNS}
    for at in range(0, len(rows), INSERT_CHUNK):
        chunk = rows[at : at + INSERT_CHUNK]
        await conn.execute(
            upsert_stmt(
                conn.dialect.name,
                track_daily,
                chunk,
                index_elements=["site_id", "day", "dimension", "value"],
                update_columns=additive,
            )
        )


def _add_to(name: str) -> Callable[[Callable[[str], Any]], Any]:
    def add(new_value: Callable[[str], Any]) -> Any:
        return track_daily.c[name] + new_value(name)

    return add


async def last_rolled_day(conn: AsyncConnection, scope: SiteScope) -> date | None:
    found: date | None = (
        await conn.execute(
            select(func.max(track_daily.c.day)).where(
                where_site(track_daily, scope), track_daily.c.dimension == "all"
            )
        )
    ).scalar_one_or_none()
    return found


async def rolled_metrics(
    conn: AsyncConnection,
    scope: SiteScope,
    first: date,
    last: date,
    dimension: RollupDimension,
    *,
    by_day: bool = False,
) -> dict[Key, Metrics]:
    """Rolled-up figures of days ``first`` to ``last`` for ``dimension``, summed per value (and
    per day with ``by_day``): keys ``(value,)`` or ``(day index, value)``."""
    d = track_daily.c
    sums = [func.coalesce(func.sum(d[name]), 0) for name in METRIC_COLUMNS]
    keys: list[Any] = ([d.day] if by_day else []) + [d.value]
    query = (
        select(*keys, *sums)
        .where(
            where_site(track_daily, scope),
            d.dimension == dimension,
            d.day >= first,
            d.day <= last,
        )
        .group_by(*keys)
    )
    found: dict[Key, Metrics] = {}
    width = len(keys)
    for row in await conn.execute(query):
        metrics = Metrics()
        for name, value in zip(METRIC_COLUMNS, row[width:], strict=True):
            setattr(metrics, name, money(value) if name == "sales_value" else int(value or 0))
        key = (index_of_date(row[0]), row[1]) if by_day else (row[0],)
        found[key] = metrics
    return found


def total(found: Iterable[Metrics]) -> Metrics:
    summed = Metrics()
    for metrics in found:
        summed.add(metrics)
    return summed
