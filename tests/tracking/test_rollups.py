"""Daily rollups: the same figures as raw rows for the same days, ranges that mix both, and the
maintenance job keeping them so that dashboards still answer after retention."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from core.errors import ValidationFailed
from service.db import Database
from service.db.tables.tracking import track_daily, track_intents, track_sessions
from service.settings import Settings
from service.tracking.dashboard import SiteView, breakdown, kpis, timeline
from service.tracking.dashboard_time import Period
from service.tracking.maintenance import run_maintenance
from service.tracking.maintenance_retention import Budget
from service.tracking.rollups import roll_days
from service.tracking.rollups_horizon import Horizon, months_before
from service.tracking.scope import where_site
from tests.tracking.dashboard_seed import (
    Seeded,
    add_intent,
    add_session,
    at,
    make_site,
    seed_istanbul,
    view_at,
)

NOW = at("2026-11-20 12:00")
DAYS = ("2026-11-09", "2026-11-10", "2026-11-11")
ISTANBUL = ZoneInfo("Europe/Istanbul")


def _period(first: str, last: str, zone: ZoneInfo = ISTANBUL) -> Period:
    return Period(date.fromisoformat(first), date.fromisoformat(last), zone)


def _budget() -> Budget:
    return Budget(time.monotonic, time.monotonic() + 600)


def _without(found: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in found.items() if k not in keys}


def _rolled_view(site: Seeded) -> SiteView:
    """Every day of November read from rollups (raw rows kept only from December on)."""
    return view_at(site, NOW, raw_from=at("2026-11-30 21:00"))


async def _roll(database: Database, site: Seeded, first: str, last: str) -> None:
    async with database.begin() as conn:
        await roll_days(conn, site.scope, _period(first, last))


async def test_each_day_gives_the_same_figures_from_rollups(database: Database) -> None:
    site, _ = await seed_istanbul(database)
    await _roll(database, site, "2026-11-08", "2026-11-12")
    raw, rolled = view_at(site, NOW), _rolled_view(site)
    frame = ("rollup_days", "raw_days", "expired_days")
    async with database.connect() as conn:
        for day in DAYS:
            one = _period(day, day)
            from_raw, from_rollups = await kpis(conn, raw, one), await kpis(conn, rolled, one)
            assert from_rollups["rollup_days"] == {"from": day, "to": day}
            assert _without(from_raw, *frame) == _without(from_rollups, *frame)
            for dimension in ("source", "device", "landing", "country"):
                a = await breakdown(conn, raw, one, dimension, 2)
                b = await breakdown(conn, rolled, one, dimension, 2)
                assert _without(a, *frame) == _without(b, *frame)
        week = _period("2026-11-07", "2026-11-13")
        for ads_only in (False, True):
            a = await timeline(conn, raw, week, "day", ads_only=ads_only)
            b = await timeline(conn, rolled, week, "day", ads_only=ads_only)
            assert a["buckets"] == b["buckets"]
    assert any(b["sessions"] for b in a["buckets"])


async def test_a_range_of_rolled_days_counts_visitors_per_day(database: Database) -> None:
    site, _ = await seed_istanbul(database)
    await _roll(database, site, "2026-11-09", "2026-11-11")
    three = _period(*DAYS[::2])
    async with database.connect() as conn:
        from_raw = await kpis(conn, view_at(site, NOW), three)
        from_rollups = await kpis(conn, _rolled_view(site), three)
        per_day = [
            (await kpis(conn, view_at(site, NOW), _period(d, d)))["totals"]["visitors"]
            for d in DAYS
        ]
    assert from_raw["visitors_exact"] and not from_rollups["visitors_exact"]
    assert from_raw["totals"]["visitors"] == 3
    assert from_rollups["totals"]["visitors"] == sum(per_day) == 5
    for block in ("totals", "ads"):
        assert _without(from_raw[block], "visitors") == _without(from_rollups[block], "visitors")


async def test_a_range_mixing_both_takes_rollups_for_old_days(database: Database) -> None:
    site, _ = await seed_istanbul(database)
    await _roll(database, site, "2026-11-09", "2026-11-09")
    # Raw rows are kept from 10 November (local midnight) on.
    mixed = view_at(site, NOW, raw_from=at("2026-11-09 21:00"))
    async with database.begin() as conn:
        # A session of 9 November that arrived after its day was rolled up: the rollup is what
        # the dashboard shows for that day, so it does not count.
        await add_session(conn, site.scope, at("2026-11-09 10:00"), page_views=7)
    async with database.connect() as conn:
        found = await kpis(conn, mixed, _period(*DAYS[::2]))
        raw = await kpis(conn, view_at(site, NOW), _period(*DAYS[::2]))
        with pytest.raises(ValidationFailed, match="hour buckets exist only for days"):
            await timeline(conn, mixed, _period(*DAYS[:2]), "hour", ads_only=False)
        hours = await timeline(conn, mixed, _period(DAYS[1], DAYS[1]), "hour", ads_only=False)
    assert found["rollup_days"] == {"from": "2026-11-09", "to": "2026-11-09"}
    assert found["raw_days"] == {"from": "2026-11-10", "to": "2026-11-11"}
    assert raw["totals"]["sessions"] == found["totals"]["sessions"] + 1
    assert raw["totals"]["page_views"] == found["totals"]["page_views"] + 7
    assert len(hours["buckets"]) == 24


async def test_rolling_a_day_again_replaces_it(database: Database) -> None:
    site, ids = await seed_istanbul(database)
    await _roll(database, site, "2026-11-10", "2026-11-10")
    async with database.begin() as conn:
        await add_intent(conn, site.scope, ids["s3"], at("2026-11-10 15:00"), kind="whatsapp")
    await _roll(database, site, "2026-11-10", "2026-11-10")
    async with database.connect() as conn:
        found = await kpis(conn, _rolled_view(site), _period(DAYS[1], DAYS[1]))
        rows = (
            await conn.execute(
                select(track_daily.c.dimension, func.count())
                .where(where_site(track_daily, site.scope))
                .group_by(track_daily.c.dimension)
            )
        ).all()
    assert found["totals"]["intents"] == {"phone": 2, "whatsapp": 3, "total": 5}
    assert dict(rows) == {"all": 1, "ads": 1, "source": 3, "device": 4, "landing": 4, "country": 3}


# ---------------------------------------------------------------- the maintenance job


def _settings(make_settings: Callable[..., Settings], database: Database) -> Settings:
    return make_settings(database_url=database.url)


async def _daily_sessions(database: Database, site: Seeded, first: datetime, days: int) -> None:
    async with database.begin() as conn:
        for n in range(days):
            day = first + timedelta(days=n)
            await add_session(conn, site.scope, day, page_views=n + 1, source=f"s{n % 3}")
            await add_intent(
                conn, site.scope, None, day, status="confirmed", amount="10", currency="TRY"
            )


async def test_the_job_keeps_rollups_that_outlive_raw_rows(
    database: Database, make_settings: Callable[..., Settings]
) -> None:
    settings = _settings(make_settings, database)
    async with database.begin() as conn:
        site = await make_site(conn, config={"retention_months": 1})
    await _daily_sessions(database, site, at("2026-10-01 09:00"), 40)  # 1 Oct - 9 Nov
    now = at("2026-11-10 09:00")
    kept = _period("2026-10-11", "2026-10-31")
    async with database.connect() as conn:
        before = await kpis(conn, view_at(site, now), kept)
    report = await run_maintenance(database, settings, now, _budget())
    # From 11 October (the first local day wholly within a month's retention) to yesterday.
    assert report.days_rolled == 30
    async with database.connect() as conn:
        rolled = (
            await conn.execute(
                select(func.min(track_daily.c.day), func.max(track_daily.c.day)).where(
                    where_site(track_daily, site.scope), track_daily.c.dimension == "all"
                )
            )
        ).one()
    assert tuple(rolled) == (date(2026, 10, 11), date(2026, 11, 9))
    # A run later: the recent days again, and the two about to expire.
    again = await run_maintenance(database, settings, now + timedelta(hours=1), _budget())
    assert again.days_rolled == 2 + 2
    # Three weeks on, October's raw rows are gone and its rolled days answer for them.
    later = at("2026-12-01 09:00")
    await run_maintenance(database, settings, later, _budget())
    view = SiteView.of(site.site, site.scope, now=later, retention=13)
    async with database.connect() as conn:
        after = await kpis(conn, view, kept)
        raw_now = await kpis(conn, view_at(site, later), kept)
        left = (
            await conn.execute(
                select(func.min(track_sessions.c.started_at)).where(
                    where_site(track_sessions, site.scope)
                )
            )
        ).scalar_one()
    assert left >= months_before(later, 1)
    assert raw_now["totals"]["sessions"] == 0
    assert view.horizon.first_raw_day == date(2026, 11, 2)
    assert after["rollup_days"] == {"from": "2026-10-11", "to": "2026-10-31"}
    assert _without(after["totals"], "visitors") == _without(before["totals"], "visitors")
    assert (after["totals"]["sessions"], after["totals"]["sales"]) == (21, 21)


async def test_long_ranges_read_rolled_sessions_and_live_intents(database: Database) -> None:
    site, ids = await seed_istanbul(database)
    await _roll(database, site, "2026-10-20", "2026-11-12")
    view = view_at(site, NOW)  # every raw row kept
    long = _period("2026-10-20", "2026-11-19")  # 31 days: counted from raw rows
    longer = _period("2026-10-19", "2026-11-19")
    async with database.begin() as conn:
        # After the rollup: a late session on a rolled day, and a seal of an intent of it.
        await add_session(conn, site.scope, at("2026-11-10 08:00"), page_views=5)
        await conn.execute(
            track_intents.update()
            .where(where_site(track_intents, site.scope), track_intents.c.id == ids["i2"])
            .values(status="confirmed", amount=50, currency="TRY")
        )
    async with database.connect() as conn:
        exact = await kpis(conn, view, long)
        fast = await kpis(conn, view, longer)
        days = await timeline(conn, view, longer, "day", ads_only=False)
        sources = await breakdown(conn, view, longer, "source", 10)
    assert (exact["rollup_days"], exact["visitors_exact"]) == (None, True)
    assert fast["rollup_days"] == {"from": "2026-10-19", "to": "2026-11-12"}
    assert fast["raw_days"] == {"from": "2026-11-13", "to": "2026-11-19"}
    assert fast["expired_days"] is None and not fast["visitors_exact"]
    # Sessions as rolled up (the late one is not there); intents as they are now.
    assert exact["totals"]["sessions"] == fast["totals"]["sessions"] + 1
    assert fast["totals"]["sales"] == exact["totals"]["sales"] == 3
    assert fast["totals"]["sales_value"] == exact["totals"]["sales_value"] == "150.50"
    assert fast["ads"] == exact["ads"]
    tenth = next(b for b in days["buckets"] if b["start"].startswith("2026-11-10"))
    assert (tenth["sessions"], tenth["sales"]) == (3, 3)
    direct = next(r for r in sources["rows"] if r["value"] is None)
    assert direct["sales_value"] == "50.00"


def test_horizon_of_a_retention() -> None:
    zone = ZoneInfo("Europe/Istanbul")
    horizon = Horizon.of(at("2026-03-31 12:00"), 1, zone)
    assert horizon.cutoff == at("2026-02-28 12:00")
    assert horizon.first_raw_day == date(2026, 3, 1)
    rolled, raw = horizon.split(_period("2026-02-20", "2026-03-05", zone))
    assert rolled == _period("2026-02-20", "2026-02-28", zone)
    assert raw == _period("2026-03-01", "2026-03-05", zone)
    assert horizon.split(_period("2026-03-02", "2026-03-05", zone)) == (
        None,
        _period("2026-03-02", "2026-03-05", zone),
    )
