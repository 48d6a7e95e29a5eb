"""Growth: retention per site in bounded batches, expiry of dedup ids and idempotency answers,
monthly partitions on MariaDB (made ahead, dropped past the longest retention), and one
maintenance run at a time across processes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Table, func, insert, select, text

from core.clock import ManualClock
from service.backends import Backends
from service.db import Database
from service.db.migrate import migrate
from service.db.tables.tracking import (
    SITE_SCOPED,
    track_event_ids,
    track_events,
    track_idempotency,
    track_sessions,
)
from service.runtime import Runtime
from service.settings import Settings
from service.tracking import maintenance_retention, partitions
from service.tracking.maintenance import LOCK_KEY, TrackingMaintenance, run_maintenance
from service.tracking.maintenance_retention import Budget, Removed, expire_site
from service.tracking.scope import ALL_SITES, SiteScope, site_values, where_site
from tests.tracking.dashboard_seed import Seeded, add_event, add_session, at, make_site

NOW = at("2026-11-20 12:00")


def _budget() -> Budget:
    return Budget(time.monotonic, time.monotonic() + 600)


async def _count(database: Database, table: Table, scope: SiteScope) -> int:
    async with database.connect() as conn:
        query = select(func.count()).select_from(table).where(where_site(table, scope))
        return int((await conn.execute(query)).scalar_one())


async def _traffic(database: Database, site: Seeded, instants: list[datetime]) -> None:
    async with database.begin() as conn:
        for instant in instants:
            session = await add_session(conn, site.scope, instant)
            await add_event(conn, site.scope, session, instant)
            await add_event(conn, site.scope, session, instant + timedelta(seconds=1))


async def _bookkeeping(database: Database, site: Seeded, instants: list[datetime]) -> None:
    async with database.begin() as conn:
        for n, instant in enumerate(instants):
            await conn.execute(
                insert(track_event_ids).values(
                    **site_values(site.scope, event_id=f"id-{n}", received_at=instant)
                )
            )
            await conn.execute(
                insert(track_idempotency).values(
                    **site_values(
                        site.scope,
                        key=f"key-{n}",
                        request_hash="h",
                        status=200,
                        body={},
                        created_at=instant,
                    )
                )
            )


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(maintenance_retention, "BATCH", 3)
    return 3


async def test_each_site_keeps_its_own_retention(
    database: Database, make_settings: Callable[..., Settings], small_batches: int
) -> None:
    settings = make_settings(database_url=database.url)  # 13 months, dedup 7 days, 24 hours
    async with database.begin() as conn:
        long = await make_site(conn, name="Long")
        short = await make_site(conn, name="Short", config={"retention_months": 2})
    old, middle, recent = at("2025-09-01 10:00"), at("2026-08-01 10:00"), at("2026-11-19 10:00")
    await _traffic(database, long, [old, old, middle, recent])
    await _traffic(database, short, [old, middle, middle, middle, recent])
    await _bookkeeping(database, long, [NOW - timedelta(days=8), NOW - timedelta(hours=25)])
    await _bookkeeping(database, short, [NOW - timedelta(days=6), NOW - timedelta(hours=2)])
    report = await run_maintenance(database, settings, NOW, _budget())
    removed = report.removed
    assert report.complete
    # 13 months keep August; 2 months do not. Both events of each session go with it.
    assert await _count(database, track_sessions, long.scope) == 2
    assert await _count(database, track_events, long.scope) == 4
    assert await _count(database, track_sessions, short.scope) == 1
    assert await _count(database, track_events, short.scope) == 2
    assert (removed.sessions, removed.events) == (2 + 4, 4 + 8)
    # Past 7 days: one dedup id; past 24 hours: two idempotency answers.
    assert removed.event_ids == 1 and removed.idempotency == 3
    assert await _count(database, track_event_ids, long.scope) == 1
    assert await _count(database, track_idempotency, short.scope) == 1


async def test_a_spent_budget_leaves_the_rest_for_the_next_run(
    database: Database, make_settings: Callable[..., Settings], small_batches: int
) -> None:
    settings = make_settings(database_url=database.url)
    async with database.begin() as conn:
        site = await make_site(conn)
    await _traffic(database, site, [at("2025-01-01 10:00")] * 4)  # 8 events
    spent = Budget(lambda: 1.0, 0.0)  # every batch is the last of the run
    first = Removed()
    await expire_site(database, site.scope, at("2026-01-01 00:00"), spent, first)
    assert not first.complete and (first.events, first.sessions) == (small_batches, 0)
    assert await _count(database, track_events, site.scope) == 8 - small_batches
    second = await run_maintenance(database, settings, NOW, _budget())
    assert second.complete
    assert await _count(database, track_events, site.scope) == 0
    assert await _count(database, track_sessions, site.scope) == 0


async def test_one_run_at_a_time_across_processes(
    make_settings: Callable[..., Settings], backends: Backends
) -> None:
    settings = make_settings()
    db = Database(settings.database_url)
    await migrate(db)
    try:
        clock = ManualClock(NOW.timestamp())
        runtime = Runtime(settings=settings, clock=clock, db=db, backends=backends)
        job = TrackingMaintenance(runtime)
        other = TrackingMaintenance(runtime)
        assert await backends.kv.set_if_absent(LOCK_KEY, b"another process", ttl=60)
        assert await job.run_once() is None
        await backends.kv.delete(LOCK_KEY)
        assert await job.run_once() is not None
        # Released after the run: the next one (here another instance) takes it.
        assert await other.run_once() is not None
        assert await backends.kv.get(LOCK_KEY) is None
    finally:
        await db.dispose()


# ---------------------------------------------------------------- MariaDB partitions


@pytest.fixture
async def mariadb(mariadb_url: str) -> AsyncIterator[Database]:
    """The run's MariaDB, emptied; the event table's partitions restored afterwards."""
    db = Database(mariadb_url)
    async with db.connect() as conn:
        before = await partitions.month_partitions(conn)
    assert before, "migration 0023 partitions track_events by month"
    try:
        yield db
    finally:
        async with db.begin() as conn:
            await conn.execution_options(**ALL_SITES)
            for table in (*SITE_SCOPED, track_sessions):
                await conn.execute(table.delete())
            await conn.execute(text("DELETE FROM sites"))
            parts = ", ".join(
                [*(partitions.partition_sql(p.month) for p in before), partitions.CATCH_ALL_SQL]
            )
            await conn.execute(text("ALTER TABLE track_events REMOVE PARTITIONING"))
            await conn.execute(
                text(f"ALTER TABLE track_events PARTITION BY RANGE COLUMNS(received_at) ({parts})")
            )
        await db.dispose()


async def _in_partition(db: Database, scope: SiteScope, name: str) -> int:
    async with db.connect() as conn:
        return int(
            (
                await conn.execute(
                    text(
                        f"SELECT COUNT(*) FROM track_events PARTITION ({name}) WHERE site_id = :s"
                    ),
                    {"s": scope.site_id},
                )
            ).scalar_one()
        )


async def test_months_are_made_ahead_and_dropped_past_the_longest_retention(
    mariadb: Database, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(database_url=mariadb.url, tracking_partitions_ahead=2)
    now = at("2031-06-15 12:00")
    async with mariadb.begin() as conn:
        short = await make_site(conn, name="13 months")
        long = await make_site(conn, name="24 months", config={"retention_months": 24})
    # Received before the job made their months: they sit in pmax until it does.
    await _traffic(mariadb, short, [at("2029-01-10 10:00"), at("2030-03-10 10:00")])
    await _traffic(mariadb, short, [at("2031-06-01 10:00")])
    await _traffic(mariadb, long, [at("2029-05-10 10:00"), at("2029-08-10 10:00")])
    assert await _in_partition(mariadb, short.scope, "pmax") == 6
    report = await run_maintenance(mariadb, settings, now, _budget())
    async with mariadb.connect() as conn:
        months = await partitions.month_partitions(conn)
    assert months is not None
    names = [p.name for p in months]
    # Up to August 2031 (two months ahead); nothing bounded by mid-June 2029 (24 months) left.
    assert names[-1] == "p203108" and "p203108" in report.partitions_created
    assert names[0] == "p202906"
    assert "p202905" in report.partitions_dropped
    assert await _in_partition(mariadb, short.scope, "p203106") == 2
    assert await _in_partition(mariadb, short.scope, "pmax") == 0
    # The 13-month site loses March 2030 by batches; the 24-month site keeps August 2029.
    assert await _count(mariadb, track_events, short.scope) == 2
    assert await _count(mariadb, track_events, long.scope) == 2
    assert await _count(mariadb, track_sessions, long.scope) == 1
    # Nothing to do a second time.
    again = await run_maintenance(mariadb, settings, now, _budget())
    assert again.partitions_created == [] and again.partitions_dropped == []
