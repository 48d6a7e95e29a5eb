"""The purge job: every ``tracking_maintenance_seconds`` it empties the trash of what was
deleted longer ago than ``tracking_trash_retention_days`` - sites and intents
(``trash_purge``), then CRM contacts and notes (``service/whatsapp/crm_purge.py``).

It needs no lock between processes: every batch locks the item it purges and checks it is still
one to purge, so processes running it at once take turns and each item is removed (and audited)
once. A run stops starting batches after ``RUN_BUDGET_SECONDS``; the next run goes on.
"""

from __future__ import annotations

from datetime import datetime

from service.db.types import from_timestamp
from service.logging import get_logger
from service.periodic import Periodic
from service.runtime import Runtime
from service.tracking.maintenance_retention import Budget
from service.tracking.trash_purge import Purged, purge_tracking
from service.whatsapp.crm_purge import purge_crm

log = get_logger("kervan.tracking.trash")

RUN_BUDGET_SECONDS = 300.0


class TrashPurge(Periodic):
    """The job as a runtime component (``add_trash_purge``)."""

    name = "trash-purge"

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime.settings.tracking_maintenance_seconds)
        self._runtime = runtime
        self.last: Purged | None = None

    async def run_once(
        self, *, now: datetime | None = None, budget: Budget | None = None
    ) -> Purged:
        """One run at ``now`` (the clock's by default) within ``budget``."""
        runtime = self._runtime
        clock = runtime.clock
        at = now or from_timestamp(clock.now())
        limit = budget or Budget(clock.monotonic, clock.monotonic() + RUN_BUDGET_SECONDS)
        days = runtime.settings.tracking_trash_retention_days
        purged = Purged()
        await purge_tracking(runtime.db, at, days, limit, purged)
        if limit.spent:
            purged.complete = False
        else:
            await purge_crm(runtime.db, at, days, limit, purged)
        self.last = purged
        return purged

    async def step(self) -> None:
        purged = await self.run_once()
        if purged.did_something:
            log.info(
                "trash purged: %d sites (%d rows), %d intents, %d contacts, %d notes%s",
                purged.sites,
                sum(purged.rows.values()),
                purged.intents,
                purged.contacts,
                purged.notes,
                "" if purged.complete else " (budget spent: the rest next run)",
            )


def add_trash_purge(runtime: Runtime) -> TrashPurge:
    """Register the job on ``runtime`` (the tracking maintenance's setup calls this)."""
    job = TrashPurge(runtime)
    runtime.provide(TrashPurge, job)
    runtime.add_component(job)
    return job
