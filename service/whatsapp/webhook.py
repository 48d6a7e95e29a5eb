"""Processing of one signed webhook delivery.

Order matters: the raw body is committed first (so nothing WhatsApp sent is ever lost, even if
processing fails), then everything the delivery carries is applied in ONE transaction together
with the jobs it triggers (transactional outbox), then live updates are published.
Redeliveries are harmless: inbound messages are keyed by their provider id.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.clock import Clock
from core.errors import Conflict, NotFound, StorageError
from core.whatsapp.parse import InvalidPayload, parse_webhook
from service.backends import Backends
from service.db import Database
from service.db.tables.crm import wa_webhook_events
from service.db.types import from_timestamp
from service.logging import get_logger
from service.whatsapp import live
from service.whatsapp.metrics import INBOUND_MESSAGES, STATUS_UPDATES, WEBHOOK_DELIVERIES
from service.whatsapp.store import StatusChange, StoredInbound, apply_statuses, save_inbound

log = get_logger("kervan.whatsapp.webhook")

#: Runs inside the processing transaction for the newly stored inbound messages (consent
#: keywords, auto-reply jobs); returns extra live events to publish after commit.
InboundHook = Callable[
    [AsyncConnection, Sequence[StoredInbound], datetime], Awaitable[list[dict[str, Any]]]
]
MAX_ISSUES_KEPT = 50
ATTEMPTS = 3


def _is_deadlock(exc: StorageError) -> bool:
    # MariaDB ER_LOCK_DEADLOCK; the driver error only survives as text in the wrapped message.
    return "(1213," in exc.message


def encode_raw(body: bytes) -> tuple[str, str]:
    """The body as storable text, exactly recoverable with :func:`decode_raw`."""
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), "base64"


def decode_raw(text: str, encoding: str) -> bytes:
    return base64.b64decode(text) if encoding == "base64" else text.encode("utf-8")


class PayloadRejected(Exception):
    """Signed, stored, but not a WhatsApp notification (answered with 400)."""

    def __init__(self, event_id: int, reason: str) -> None:
        super().__init__(reason)
        self.event_id = event_id
        self.reason = reason


@dataclass
class WebhookOutcome:
    event_id: int
    stored: list[StoredInbound] = field(default_factory=list)
    changes: list[StatusChange] = field(default_factory=list)
    duplicates: int = 0
    parked: int = 0
    issues: list[str] = field(default_factory=list)


class WebhookProcessor:
    def __init__(
        self,
        db: Database,
        backends: Backends,
        clock: Clock,
        hooks: Sequence[InboundHook] = (),
    ) -> None:
        self._db = db
        self._backends = backends
        self._clock = clock
        self.hooks = list(hooks)
        # SQLite has one writer; queueing our own writers here is far cheaper than letting them
        # collide in SQLite's busy handler, which sleeps in steps of up to 100 ms.
        self._sqlite_writer = asyncio.Lock() if db.dialect == "sqlite" else None

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        if self._sqlite_writer is None:
            async with self._db.begin() as conn:
                yield conn
            return
        async with self._sqlite_writer, self._db.begin() as conn:
            yield conn

    async def _store_raw(self, body: bytes, now: datetime) -> int:
        text, encoding = encode_raw(body)
        async with self._write() as conn:
            result = await conn.execute(
                insert(wa_webhook_events).values(
                    received_at=now,
                    body=text,
                    body_encoding=encoding,
                    state="received",
                    messages=0,
                    statuses=0,
                )
            )
        primary_key = result.inserted_primary_key
        assert primary_key is not None
        return int(primary_key[0])

    async def _mark(self, event_id: int, **values: Any) -> None:
        async with self._write() as conn:
            await conn.execute(
                update(wa_webhook_events).where(wa_webhook_events.c.id == event_id).values(**values)
            )

    async def _fail(self, event_id: int, now: datetime) -> None:
        WEBHOOK_DELIVERIES.labels("failed").inc()
        try:
            await self._mark(event_id, state="failed", processed_at=now)
        except Exception:  # the original error is the one worth reporting
            log.exception("could not mark webhook event %s failed", event_id)

    async def handle(self, body: bytes) -> WebhookOutcome:
        """Body must already be signature-checked by the caller."""
        now = from_timestamp(self._clock.now())
        event_id = await self._store_raw(body, now)
        return await self.process(event_id, body, now)

    async def replay(self, event_id: int) -> WebhookOutcome:
        """Processes a stored delivery again (after a failure); safe because processing is
        idempotent on provider message ids."""
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    select(wa_webhook_events.c.body, wa_webhook_events.c.body_encoding).where(
                        wa_webhook_events.c.id == event_id
                    )
                )
            ).first()
        if row is None:
            raise NotFound("no such webhook event", details={"event_id": event_id})
        body = decode_raw(row.body, row.body_encoding)
        return await self.process(event_id, body, from_timestamp(self._clock.now()))

    async def process(self, event_id: int, body: bytes, now: datetime) -> WebhookOutcome:
        """Applies a stored delivery; its log row ends ``processed``, ``rejected`` or ``failed``."""
        try:
            batch = parse_webhook(orjson.loads(body))
        except (orjson.JSONDecodeError, InvalidPayload) as exc:
            reason = str(exc) if isinstance(exc, InvalidPayload) else "the body is not valid JSON"
            await self._mark(event_id, state="rejected", issues=[reason], processed_at=now)
            WEBHOOK_DELIVERIES.labels("rejected").inc()
            raise PayloadRejected(event_id, reason) from None
        outcome = WebhookOutcome(event_id, issues=batch.issues[:MAX_ISSUES_KEPT])
        extra_events: list[dict[str, Any]] = []
        # Two deliveries of the same new message can race; the loser's unique-key conflict rolls
        # its transaction back and the retry then sees the message as a duplicate. InnoDB may
        # also pick a concurrent delivery as a deadlock victim; it is rolled back whole, too.
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self._write() as conn:
                    outcome.stored = await save_inbound(
                        conn, self._db.dialect, batch.messages, batch.profiles, now
                    )
                    outcome.changes, outcome.parked = await apply_statuses(
                        conn, batch.statuses, now
                    )
                    extra_events = []
                    if outcome.stored:
                        for hook in self.hooks:
                            extra_events += await hook(conn, outcome.stored, now)
                    outcome.duplicates = len(batch.messages) - len(outcome.stored)
                    await conn.execute(
                        update(wa_webhook_events)
                        .where(wa_webhook_events.c.id == event_id)
                        .values(
                            state="processed",
                            messages=len(outcome.stored),
                            statuses=len(batch.statuses),
                            issues=outcome.issues or None,
                            processed_at=now,
                        )
                    )
                break
            except (Conflict, StorageError) as exc:
                retryable = isinstance(exc, Conflict) or _is_deadlock(exc)
                if not retryable or attempt == ATTEMPTS:
                    await self._fail(event_id, now)
                    raise
            except Exception:
                await self._fail(event_id, now)
                raise
        WEBHOOK_DELIVERIES.labels("processed").inc()
        INBOUND_MESSAGES.labels("stored").inc(len(outcome.stored))
        INBOUND_MESSAGES.labels("duplicate").inc(outcome.duplicates)
        STATUS_UPDATES.labels("applied").inc(len(outcome.changes))
        STATUS_UPDATES.labels("parked").inc(outcome.parked)
        STATUS_UPDATES.labels("kept").inc(
            len(batch.statuses) - len(outcome.changes) - outcome.parked
        )
        await live.publish(
            self._backends,
            live.inbound_events(outcome.stored)
            + live.status_events(outcome.changes)
            + extra_events,
        )
        return outcome
