"""Retention of the raw webhook log and of statuses parked for unknown message ids.

Both tables only grow otherwise. Failed deliveries are kept (they are the ones someone may want
to replay); processed and rejected ones go after the retention period. Deletes run in small
batches so that a large backlog never holds long locks beside live webhook traffic.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.schema import Table

from service.db import Database
from service.db.tables.crm import crm_pending_statuses, wa_webhook_events
from service.db.types import from_timestamp
from service.logging import get_logger
from service.periodic import Periodic
from service.runtime import Runtime

log = get_logger("kervan.whatsapp.retention")
BATCH = 1000
PURGE_INTERVAL_SECONDS = 3600.0


async def _purge_batches(db: Database, table: Table, *conditions: ColumnElement[bool]) -> int:
    removed = 0
    while True:
        async with db.begin() as conn:
            ids = list(
                (await conn.execute(select(table.c.id).where(*conditions).limit(BATCH))).scalars()
            )
            if ids:
                await conn.execute(delete(table).where(table.c.id.in_(ids)))
        removed += len(ids)
        if len(ids) < BATCH:
            return removed


async def purge(
    db: Database, now: datetime, *, events_days: int, pending_days: int
) -> tuple[int, int]:
    """Removes expired rows; returns (webhook events, parked statuses) removed. 0 days = keep."""
    events = pending = 0
    if events_days > 0:
        cutoff = now - timedelta(days=events_days)
        events = await _purge_batches(
            db,
            wa_webhook_events,
            wa_webhook_events.c.received_at < cutoff,
            wa_webhook_events.c.state.in_(("processed", "rejected")),
        )
    if pending_days > 0:
        cutoff = now - timedelta(days=pending_days)
        pending = await _purge_batches(
            db, crm_pending_statuses, crm_pending_statuses.c.received_at < cutoff
        )
    return events, pending


class RetentionTask(Periodic):
    """Purges once at start and then every hour (idempotent, so several processes may run it)."""

    name = "whatsapp-retention"

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(PURGE_INTERVAL_SECONDS)
        self._runtime = runtime

    async def run_once(self) -> tuple[int, int]:
        settings = self._runtime.settings
        return await purge(
            self._runtime.db,
            from_timestamp(self._runtime.clock.now()),
            events_days=settings.whatsapp_event_retention_days,
            pending_days=settings.whatsapp_pending_status_retention_days,
        )

    async def step(self) -> None:
        removed = await self.run_once()
        if any(removed):
            log.info("whatsapp retention purge removed %d events, %d statuses", *removed)

    def on_error(self, error: Exception) -> None:
        log.warning("whatsapp retention purge failed: %s", type(error).__name__)
