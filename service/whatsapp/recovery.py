"""Recovery of stored but unprocessed webhook deliveries.

A delivery's raw event is committed before it is processed (``service/whatsapp/webhook.py``).
A process that dies between the two (SIGKILL, OOM, a host failure) leaves its raw events in the
``received`` state; nobody else would ever process them, and Meta does not redeliver what was
answered with a 200. This component processes them through the same pipeline as live
deliveries:

- at start-up, every ``received`` event stored before this process started (orphans of an
  earlier process, or events a sibling process stored and is about to process);
- then every ``RECOVERY_INTERVAL_SECONDS``, events still ``received`` after
  ``STALE_AFTER_SECONDS`` (left by a sibling process that died and did not come back), except
  those this process is processing itself.

Every process runs it, so several may reach for the same event at once, or for one a live group
is about to process. What makes that safe is the claim, not the timing: the processing
transaction claims its events before it applies them (``WebhookProcessor._claim``), locking
them, applying only those still ``received`` and changing their state in the same transaction,
and a recovery skips events another transaction holds. So each event is applied exactly once,
whoever gets there first. The age threshold only keeps the sweep from getting to a live group's
events first; a live group that does find its event processed answers it as a redelivery.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.sql.elements import ColumnElement

from service.db.tables.crm import wa_webhook_events
from service.db.types import from_timestamp
from service.logging import get_logger
from service.periodic import Periodic
from service.runtime import Runtime
from service.whatsapp.metrics import WEBHOOK_RECOVERED
from service.whatsapp.webhook import (
    DEFAULT_MAX_GROUP,
    NotClaimed,
    PayloadRejected,
    StoredDelivery,
    WebhookOutcome,
    WebhookProcessor,
    decode_raw,
)

log = get_logger("kervan.whatsapp.recovery")
RECOVERY_INTERVAL_SECONDS = 60.0
STALE_AFTER_SECONDS = 120.0


class WebhookRecovery(Periodic):
    name = "whatsapp-webhook-recovery"

    def __init__(
        self,
        runtime: Runtime,
        processor: WebhookProcessor,
        *,
        interval: float = RECOVERY_INTERVAL_SECONDS,
        stale_after: float = STALE_AFTER_SECONDS,
        chunk: int = DEFAULT_MAX_GROUP,
    ) -> None:
        super().__init__(interval)
        self._runtime = runtime
        self._processor = processor
        self._stale_after = stale_after
        self._chunk = chunk
        #: Events up to this id were stored before this process started (None: not known).
        self._boundary: int | None = None
        self._first = True

    async def start(self) -> None:
        try:
            async with self._runtime.db.connect() as conn:
                self._boundary = int(
                    await conn.scalar(select(func.coalesce(func.max(wa_webhook_events.c.id), 0)))
                    or 0
                )
        except Exception as exc:  # the periodic sweep still finds them once they are stale
            log.warning("webhook recovery: could not read the last event id: %s", exc)
        await super().start()

    async def step(self) -> None:
        first, self._first = self._first, False
        condition: ColumnElement[bool]
        if first and self._boundary is not None:
            condition = wa_webhook_events.c.id <= self._boundary
        else:
            now = from_timestamp(self._runtime.clock.now())
            condition = wa_webhook_events.c.received_at < now - timedelta(seconds=self._stale_after)
        recovered = await self.recover(condition)
        if recovered:
            log.warning("webhook recovery processed %d stored deliveries", recovered)

    async def recover(self, condition: ColumnElement[bool]) -> int:
        """Processes the ``received`` events matching ``condition`` in id order; how many (not
        counting those another transaction claimed first)."""
        recovered = 0
        after = 0
        while True:
            async with self._runtime.db.connect() as conn:
                rows = (
                    await conn.execute(
                        select(
                            wa_webhook_events.c.id,
                            wa_webhook_events.c.body,
                            wa_webhook_events.c.body_encoding,
                            wa_webhook_events.c.received_at,
                        )
                        .where(
                            wa_webhook_events.c.state == "received",
                            wa_webhook_events.c.id > after,
                            condition,
                        )
                        .order_by(wa_webhook_events.c.id)
                        .limit(self._chunk)
                    )
                ).all()
            if not rows:
                return recovered
            after = int(rows[-1].id)
            # Read without a lock: only candidates, which the processing transaction claims.
            # Processed as of their arrival, as they would have been: message times are capped
            # at it and the 24-hour reply window counts from it.
            items = [
                StoredDelivery(
                    int(r.id), decode_raw(r.body, r.body_encoding), r.received_at, "recovery"
                )
                for r in rows
                if int(r.id) not in self._processor.in_flight
            ]
            results = await self._processor.process_many(items)
            for item, result in zip(items, results, strict=True):
                if isinstance(result, WebhookOutcome | PayloadRejected):
                    recovered += 1
                    WEBHOOK_RECOVERED.inc()
                elif isinstance(result, NotClaimed):
                    continue  # another process's transaction has it, or has processed it
                else:  # failed: kept as failed, for an operator's replay
                    log.warning(
                        "webhook recovery: event %s not processed: %s",
                        item.event_id,
                        type(result).__name__,
                    )

    def on_error(self, error: Exception) -> None:
        log.warning("webhook recovery failed: %s", type(error).__name__)
