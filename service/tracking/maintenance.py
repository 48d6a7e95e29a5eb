"""The tracking maintenance job: partitions ahead, rollups, retention, bookkeeping expiry.

A runtime component that runs every ``tracking_maintenance_seconds``, one process at a time: a
run takes a lock in the state backend (like the speculation refresh; a crashed holder's lock
frees itself after ``LOCK_TTL_SECONDS``) and stops starting new work after
``RUN_BUDGET_SECONDS``, well within it; what is left is done by the next run. One run:

1. MariaDB: month partitions of ``track_events`` up to ``tracking_partitions_ahead`` months
   ahead (``service.tracking.partitions``).
2. Every live site: its due days rolled up (``maintenance_rollups``), before retention can take
   their raw rows.
3. MariaDB: the month partitions past the LONGEST retention of any site dropped whole.
4. Every site: its events and sessions past its own retention deleted in bounded batches.
5. Client event ids past ``tracking_dedup_days`` and Idempotency-Key answers past
   ``tracking_idempotency_hours``, in bounded batches.

Statements across sites say so with ``ALL_SITES``; per-site ones carry the site's scope.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from service.backends.keys import TRACKING_MAINTENANCE_LOCK, TRACKING_MAINTENANCE_LOCK_TTL
from service.db import Database
from service.db.tables.tracking import sites
from service.db.types import from_timestamp
from service.logging import get_logger
from service.periodic import Periodic
from service.runtime import Runtime
from service.settings import Settings
from service.tracking import partitions
from service.tracking.maintenance_retention import (
    Budget,
    Removed,
    expire_bookkeeping,
    expire_site,
)
from service.tracking.maintenance_rollups import due_days
from service.tracking.rollups import roll_days
from service.tracking.rollups_horizon import Horizon, retention_months
from service.tracking.scope import SiteScope
from service.tracking.trash_job import add_trash_purge

log = get_logger("kervan.tracking.maintenance")

#: The state-backend key of the run lock (relative: the store prefixes the namespace).
LOCK_KEY = TRACKING_MAINTENANCE_LOCK
LOCK_TTL_SECONDS = TRACKING_MAINTENANCE_LOCK_TTL
RUN_BUDGET_SECONDS = 600.0
MAINTENANCE_ACTOR = "system:maintenance"


@dataclass(frozen=True, slots=True)
class SiteRow:
    id: int
    zone: ZoneInfo
    currency: str
    months: int
    live: bool

    def scope(self) -> SiteScope:
        return SiteScope(
            site_id=self.id,
            role="admin",
            actor=MAINTENANCE_ACTOR,
            time_zone=self.zone.key,
            currency=self.currency,
        )


@dataclass(slots=True)
class Report:
    partitions_created: list[str] = field(default_factory=list)
    partitions_dropped: list[str] = field(default_factory=list)
    days_rolled: int = 0
    rollup_rows: int = 0
    removed: Removed = field(default_factory=Removed)

    @property
    def complete(self) -> bool:
        return self.removed.complete

    @property
    def did_something(self) -> bool:
        r = self.removed
        return bool(
            self.partitions_created
            or self.partitions_dropped
            or self.days_rolled
            or r.events
            or r.sessions
            or r.event_ids
            or r.idempotency
        )


async def _sites(db: Database, default_months: int) -> list[SiteRow]:
    async with db.connect() as conn:
        rows = await conn.execute(
            select(
                sites.c.id, sites.c.time_zone, sites.c.currency, sites.c.config, sites.c.deleted_at
            ).order_by(sites.c.id)
        )
        return [
            SiteRow(
                id=row.id,
                zone=ZoneInfo(row.time_zone),
                currency=row.currency,
                months=retention_months(dict(row.config or {}), default_months),
                live=row.deleted_at is None,
            )
            for row in rows
        ]


async def run_maintenance(
    db: Database, settings: Settings, now: datetime, budget: Budget
) -> Report:
    """One maintenance run (the caller holds the lock)."""
    report = Report()
    default_months = settings.tracking_retention_months
    site_rows = await _sites(db, default_months)
    mariadb = db.dialect == "mysql"
    if mariadb:
        async with db.begin() as conn:
            report.partitions_created = await partitions.create_ahead(
                conn, now, settings.tracking_partitions_ahead
            )
    for site in site_rows:
        if not site.live or budget.spent:
            continue
        horizon = Horizon.of(now, site.months, site.zone)
        async with db.connect() as conn:
            spans = await due_days(conn, site.scope(), site.zone, horizon, now)
        for span in spans:
            if budget.spent:
                break
            async with db.begin() as conn:
                report.rollup_rows += await roll_days(conn, site.scope(), span)
            report.days_rolled += span.days
    longest = max([default_months, *(site.months for site in site_rows)])
    if mariadb:
        async with db.begin() as conn:
            report.partitions_dropped = await partitions.drop_before(
                conn, Horizon.of(now, longest, ZoneInfo("UTC")).cutoff
            )
    for site in site_rows:
        if budget.spent:
            report.removed.complete = False
            break
        cutoff = Horizon.of(now, site.months, site.zone).cutoff
        await expire_site(db, site.scope(), cutoff, budget, report.removed)
    if not budget.spent:
        await expire_bookkeeping(
            db,
            dedup_before=now - timedelta(days=settings.tracking_dedup_days),
            idempotency_before=now - timedelta(hours=settings.tracking_idempotency_hours),
            budget=budget,
            removed=report.removed,
        )
    else:
        report.removed.complete = False
    return report


class TrackingMaintenance(Periodic):
    """The job as a runtime component (``service/tracking/feature.py`` adds it)."""

    name = "tracking-maintenance"

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime.settings.tracking_maintenance_seconds)
        self._runtime = runtime
        self._owner = secrets.token_hex(12).encode()
        self.last: Report | None = None

    async def run_once(self) -> Report | None:
        """One run, or ``None`` when another process holds the lock."""
        runtime = self._runtime
        kv = runtime.backends.kv
        if not await kv.set_if_absent(LOCK_KEY, self._owner, ttl=LOCK_TTL_SECONDS):
            return None
        try:
            clock = runtime.clock
            budget = Budget(clock.monotonic, clock.monotonic() + RUN_BUDGET_SECONDS)
            report = await run_maintenance(
                runtime.db, runtime.settings, from_timestamp(clock.now()), budget
            )
        finally:
            await kv.delete_if_equals(LOCK_KEY, self._owner)
        self.last = report
        return report

    async def step(self) -> None:
        report = await self.run_once()
        if report is not None and report.did_something:
            r = report.removed
            log.info(
                "tracking maintenance: %d days rolled up, partitions +%d -%d, removed %d events, "
                "%d sessions, %d event ids, %d idempotency answers%s",
                report.days_rolled,
                len(report.partitions_created),
                len(report.partitions_dropped),
                r.events,
                r.sessions,
                r.event_ids,
                r.idempotency,
                "" if report.complete else " (budget spent: the rest next run)",
            )


def add_maintenance(runtime: Runtime) -> TrackingMaintenance:
    """Register the job on ``runtime`` (called by the tracking feature's setup)."""
    job = TrackingMaintenance(runtime)
    runtime.provide(TrackingMaintenance, job)
    runtime.add_component(job)
    # The trash's purge (sites, intents, CRM contacts and notes): a job of its own.
    add_trash_purge(runtime)
    return job
