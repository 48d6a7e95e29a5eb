"""Retention of the raw webhook log and of statuses parked for unknown message ids.

Both tables only grow otherwise. Failed deliveries are kept (they are the ones someone may want
to replay); processed and rejected ones go after the retention period. Deletes run in small
batches so that a large backlog never holds long locks beside live webhook traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.schema import Table

from service.db import Database
from service.db.tables.crm import crm_pending_statuses, wa_webhook_events
from service.db.types import from_timestamp
from service.logging import get_logger
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


class RetentionTask:
    """Purges once at start and then every hour (idempotent, so several processes may run it)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> tuple[int, int]:
        settings = self._runtime.settings
        return await purge(
            self._runtime.db,
            from_timestamp(self._runtime.clock.now()),
            events_days=settings.whatsapp_event_retention_days,
            pending_days=settings.whatsapp_pending_status_retention_days,
        )

    async def _loop(self) -> None:
        while True:
            try:
                removed = await self.run_once()
                if any(removed):
                    log.info("whatsapp retention purge removed %d events, %d statuses", *removed)
            except Exception as exc:  # a failed purge must not end the loop
                log.warning("whatsapp retention purge failed: %s", type(exc).__name__)
            await asyncio.sleep(PURGE_INTERVAL_SECONDS)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="whatsapp-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
