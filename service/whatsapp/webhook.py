"""Processing of signed webhook deliveries, group-committed.

Order matters: the raw body is committed first (so nothing WhatsApp sent is ever lost, even if
processing fails), then everything the delivery carries is applied in ONE transaction together
with the jobs it triggers (transactional outbox), then live updates are published, then the
request is answered. Redeliveries are harmless: inbound messages are keyed by their provider id,
and statuses only ever move forwards.

Both steps are group-committed (``service/whatsapp/group_commit.py``), in a two-stage pipeline:

- **store**: deliveries that arrive while a store transaction is in flight are stored together
  in the next one (one multi-row INSERT, one commit, so one fsync for the group);
- **process**: stored deliveries are processed together, in one transaction whose statements
  each cover the whole group (``save_inbound_many``, ``apply_statuses_many``, the inbound hooks
  over all new messages, one UPDATE of the raw events), with the same result as processing them
  one after the other. If that transaction fails for any reason it is rolled back whole and the
  group's deliveries are processed again one by one, each in its own transaction with the
  retries of a single delivery, so one bad delivery never fails its neighbours.

The stages run at the same time on different connections (the next group is stored while the
previous one is processed); on SQLite, whose one writer they share, they take turns. A lone
delivery starts at once; the deliveries that arrive while a group is in flight form the next
group (at most ``max_group`` of them and ``max_group_bytes`` of bodies), and while a burst is
on a stage waits up to ``group_wait`` for more before it starts a group.

A crash between the two steps leaves raw events ``received``; ``service/whatsapp/recovery.py``
processes them when the service starts again.
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
from core.whatsapp.events import WebhookBatch
from core.whatsapp.parse import InvalidPayload, parse_webhook
from service.backends import Backends
from service.db import Database
from service.db.tables.crm import wa_webhook_events
from service.db.types import from_timestamp
from service.logging import get_logger
from service.whatsapp import live
from service.whatsapp.group_commit import Entry, GroupRunner, resolve
from service.whatsapp.metrics import INBOUND_MESSAGES, STATUS_UPDATES, WEBHOOK_DELIVERIES
from service.whatsapp.store import (
    InboundDelivery,
    StatusChange,
    StoredInbound,
    apply_statuses_many,
    save_inbound_many,
)

log = get_logger("kervan.whatsapp.webhook")

#: Runs inside the processing transaction for the newly stored inbound messages (consent
#: keywords, auto-reply jobs); returns extra live events to publish after commit.
InboundHook = Callable[
    [AsyncConnection, Sequence[StoredInbound], datetime], Awaitable[list[dict[str, Any]]]
]
#: Awaited before each processing group (a test seam; see ``service/whatsapp/testing.py``).
Hold = Callable[[], Awaitable[None]]
MAX_ISSUES_KEPT = 50
ATTEMPTS = 3
#: Most deliveries per group-committed transaction.
DEFAULT_MAX_GROUP = 64
#: Most raw body bytes per group (one delivery larger than this still goes, alone): keeps a
#: group's INSERT far below MariaDB's max_allowed_packet (16 MB by default).
DEFAULT_MAX_GROUP_BYTES = 4 * 1024 * 1024
#: While a burst is on (a stage's group before had more than one delivery), how long the stage
#: waits for more before it starts the next group; a lone delivery never waits. A few ms make
#: the groups of a burst several times larger, for fewer transactions and less CPU each.
DEFAULT_GROUP_WAIT_SECONDS = 0.004
#: How long stopping waits for groups in flight before abandoning them (they are stored, and
#: recovered on the next start).
CLOSE_TIMEOUT_SECONDS = 5.0


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


@dataclass(frozen=True, slots=True)
class _Received:
    """A signed delivery, not stored yet."""

    body: bytes
    now: datetime


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    """A delivery whose raw event is committed, to be processed."""

    event_id: int
    body: bytes
    #: When it arrived (or, for a replay or a recovery, when that started).
    now: datetime


@dataclass(frozen=True, slots=True)
class _Parsed:
    event_id: int
    now: datetime
    batch: WebhookBatch | None
    #: Why the body is not a notification, when it is not.
    reason: str | None = None


Result = WebhookOutcome | Exception


def _parse(item: StoredDelivery) -> _Parsed:
    try:
        return _Parsed(item.event_id, item.now, parse_webhook(orjson.loads(item.body)))
    except (orjson.JSONDecodeError, InvalidPayload) as exc:
        reason = str(exc) if isinstance(exc, InvalidPayload) else "the body is not valid JSON"
        return _Parsed(item.event_id, item.now, None, reason)


def _received_row(item: _Received) -> dict[str, Any]:
    text, encoding = encode_raw(item.body)
    return {
        "received_at": item.now,
        "body": text,
        "body_encoding": encoding,
        "state": "received",
        "messages": 0,
        "statuses": 0,
    }


async def _insert_events(conn: AsyncConnection, rows: list[dict[str, Any]]) -> list[int]:
    """Inserts raw events; their ids in the order of ``rows``.

    An executemany, which SQLAlchemy sends as one multi-row INSERT ("insertmanyvalues") from a
    cached compiled statement. Both databases number the rows of a multi-row INSERT in
    increasing order (SQLite's rowid is max + 1 row by row, an InnoDB auto-increment is taken
    row by row), while the order in which RETURNING lists them is unspecified; so the returned
    ids are sorted.
    """
    returned = await conn.execute(insert(wa_webhook_events).returning(wa_webhook_events.c.id), rows)
    ids = sorted(int(r[0]) for r in returned)
    if len(ids) != len(rows):
        raise StorageError(f"stored {len(ids)} webhook events for {len(rows)} deliveries")
    return ids


async def _mark_events(conn: AsyncConnection, marks: Sequence[tuple[int, dict[str, Any]]]) -> None:
    """Writes each event's final state: one UPDATE per distinct set of values."""
    groups: dict[bytes, tuple[dict[str, Any], list[int]]] = {}
    for event_id, values in marks:
        key = orjson.dumps(values, default=str, option=orjson.OPT_SORT_KEYS)
        groups.setdefault(key, (values, []))[1].append(event_id)
    for values, ids in groups.values():
        await conn.execute(
            update(wa_webhook_events).where(wa_webhook_events.c.id.in_(ids)).values(**values)
        )


def _count(result: Result, statuses: int) -> None:
    if isinstance(result, PayloadRejected):
        WEBHOOK_DELIVERIES.labels("rejected").inc()
        return
    if not isinstance(result, WebhookOutcome):
        return
    WEBHOOK_DELIVERIES.labels("processed").inc()
    INBOUND_MESSAGES.labels("stored").inc(len(result.stored))
    INBOUND_MESSAGES.labels("duplicate").inc(result.duplicates)
    STATUS_UPDATES.labels("applied").inc(len(result.changes))
    STATUS_UPDATES.labels("parked").inc(result.parked)
    STATUS_UPDATES.labels("kept").inc(statuses - len(result.changes) - result.parked)


def _live_events(results: Sequence[Result], extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for result in results:
        if isinstance(result, WebhookOutcome):
            events += live.inbound_events(result.stored) + live.status_events(result.changes)
    return events + extra


class WebhookProcessor:
    def __init__(
        self,
        db: Database,
        backends: Backends,
        clock: Clock,
        hooks: Sequence[InboundHook] = (),
        *,
        max_group: int = DEFAULT_MAX_GROUP,
        max_group_bytes: int = DEFAULT_MAX_GROUP_BYTES,
        group_wait: float = DEFAULT_GROUP_WAIT_SECONDS,
    ) -> None:
        self._db = db
        self._backends = backends
        self._clock = clock
        self.hooks = list(hooks)
        # SQLite has one writer; queueing our own writers here is far cheaper than letting them
        # collide in SQLite's busy handler, which sleeps in steps of up to 100 ms.
        self._sqlite_writer = asyncio.Lock() if db.dialect == "sqlite" else None
        self._store = GroupRunner[_Received](
            "store",
            self._store_group,
            max_items=max_group,
            max_bytes=max_group_bytes,
            size=lambda item: len(item.body),
            wait=group_wait,
        )
        self._process = GroupRunner[StoredDelivery](
            "process",
            self._process_group,
            max_items=max_group,
            max_bytes=max_group_bytes,
            size=lambda item: len(item.body),
            wait=group_wait,
        )
        #: Awaited before each processing group; None in production (see testing.py).
        self.hold: Hold | None = None
        #: Raw events this process stored and has not finished processing (the recovery sweep
        #: leaves them alone).
        self.in_flight: set[int] = set()

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        if self._sqlite_writer is None:
            async with self._db.begin() as conn:
                yield conn
            return
        async with self._sqlite_writer, self._db.begin() as conn:
            yield conn

    def _now(self) -> datetime:
        return from_timestamp(self._clock.now())

    # ------------------------------------------------------------------ entry points

    async def handle(self, body: bytes) -> WebhookOutcome:
        """Stores, then processes one delivery (its body must already be signature-checked).

        Returns once both are committed; raises :class:`PayloadRejected` for a body that is
        not a notification (stored and marked rejected) and the storage error when storing or
        processing failed (the raw event, if stored, is then marked failed).
        """
        future: asyncio.Future[WebhookOutcome] = asyncio.get_running_loop().create_future()
        self._store.put(_Received(body, self._now()), future)
        return await future

    async def process(self, event_id: int, body: bytes, now: datetime) -> WebhookOutcome:
        """Processes a stored delivery (with whatever else is being processed); its log row
        ends ``processed``, ``rejected`` or ``failed``."""
        outcome: WebhookOutcome = await self._process.submit(StoredDelivery(event_id, body, now))
        return outcome

    async def process_many(self, items: Sequence[StoredDelivery]) -> list[Result]:
        """Processes stored deliveries (a recovery); each one's outcome or exception."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[WebhookOutcome]] = []
        for item in items:
            future: asyncio.Future[WebhookOutcome] = loop.create_future()
            self._process.put(item, future)
            futures.append(future)
        results: list[Result] = []
        for outcome in await asyncio.gather(*futures, return_exceptions=True):
            if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
                raise outcome  # cancelled: the recovery itself is stopping
            results.append(outcome)
        return results

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
        return await self.process(event_id, body, self._now())

    async def close(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
        """Lets the groups in flight finish (within ``timeout``), then stops the stages."""
        try:
            await asyncio.wait_for(self._drain(), timeout)
        except TimeoutError:
            log.warning("webhook groups still in flight at shutdown; they are recovered later")
        await self._store.close()
        await self._process.close()

    async def _drain(self) -> None:
        while self._store.busy or self._process.busy:
            await self._store.wait_idle()
            await self._process.wait_idle()

    # ------------------------------------------------------------------ store stage

    async def _store_group(self, group: Sequence[Entry[_Received]]) -> None:
        rows = [_received_row(item) for item, _future in group]
        try:
            async with self._write() as conn:
                ids = await _insert_events(conn, rows)
        except Exception as exc:
            if len(group) == 1:
                resolve(group[0][1], exc)
                return
            # Whatever failed, it must not fail the neighbours: each on its own.
            log.warning("storing a group of %d webhooks failed (%s); one by one", len(group), exc)
            for entry in group:
                await self._store_group([entry])
            return
        for (item, future), event_id in zip(group, ids, strict=True):
            self.in_flight.add(event_id)
            self._process.put(StoredDelivery(event_id, item.body, item.now), future)

    # ------------------------------------------------------------------ process stage

    async def _process_group(self, group: Sequence[Entry[StoredDelivery]]) -> None:
        try:
            if self.hold is not None:
                await self.hold()
            parsed = [_parse(item) for item, _future in group]
            results: list[Result]
            if len(parsed) == 1:
                results = [await self._process_one(parsed[0])]
            else:
                results = await self._process_together(parsed)
            for (_item, future), result in zip(group, results, strict=True):
                resolve(future, result)
        finally:
            # Also when the group failed or was cancelled: the sweep must see them again.
            for item, _future in group:
                self.in_flight.discard(item.event_id)

    async def _process_together(self, group: Sequence[_Parsed]) -> list[Result]:
        """The group in one transaction. A conflict or a deadlock (another process wrote the
        same rows) is retried as a group, like a single delivery's; anything else, or a group
        that keeps failing, is processed again one by one, so that the delivery at fault fails
        alone."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self._write() as conn:
                    results, extra = await self._apply(conn, group)
            except Exception as exc:
                retryable = isinstance(exc, Conflict) or (
                    isinstance(exc, StorageError) and _is_deadlock(exc)
                )
                if retryable and attempt < ATTEMPTS:
                    continue
                log.warning(
                    "processing a group of %d webhooks failed (%s: %s); one by one",
                    len(group),
                    type(exc).__name__,
                    exc,
                )
                return [await self._process_one(item) for item in group]
            await self._committed(group, results, extra)
            return results
        raise AssertionError("unreachable")  # pragma: no cover

    async def _committed(
        self, parsed: Sequence[_Parsed], results: Sequence[Result], extra: list[dict[str, Any]]
    ) -> None:
        for item, result in zip(parsed, results, strict=True):
            _count(result, len(item.batch.statuses) if item.batch is not None else 0)
        await live.publish(self._backends, _live_events(results, extra))

    async def _process_one(self, item: _Parsed) -> Result:
        """One delivery in its own transaction. Two deliveries of the same new message can
        race; the loser's unique-key conflict rolls its transaction back and the retry then
        sees the message as a duplicate. InnoDB may also pick a concurrent delivery as a
        deadlock victim; it is rolled back whole, too."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self._write() as conn:
                    results, extra = await self._apply(conn, [item])
                break
            except (Conflict, StorageError) as exc:
                retryable = isinstance(exc, Conflict) or _is_deadlock(exc)
                if not retryable or attempt == ATTEMPTS:
                    await self._fail(item.event_id)
                    return exc
            except Exception as exc:
                await self._fail(item.event_id)
                return exc
        await self._committed([item], results, extra)
        return results[0]

    async def _fail(self, event_id: int) -> None:
        WEBHOOK_DELIVERIES.labels("failed").inc()
        try:
            async with self._write() as conn:
                await conn.execute(
                    update(wa_webhook_events)
                    .where(wa_webhook_events.c.id == event_id)
                    .values(state="failed", processed_at=self._now())
                )
        except Exception:  # the original error is the one worth reporting
            log.exception("could not mark webhook event %s failed", event_id)

    async def _apply(
        self, conn: AsyncConnection, group: Sequence[_Parsed]
    ) -> tuple[list[Result], list[dict[str, Any]]]:
        """Applies ``group`` inside ``conn``'s transaction, as if one after the other; each
        delivery's outcome (or :class:`PayloadRejected`) and the hooks' extra live events."""
        now = self._now()
        accepted = [(item, item.batch) for item in group if item.batch is not None]
        stored = await save_inbound_many(
            conn,
            self._db.dialect,
            [InboundDelivery(b.messages, b.profiles, item.now) for item, b in accepted],
            now,
        )
        statuses = await apply_statuses_many(conn, [(b.statuses, item.now) for item, b in accepted])
        extra: list[dict[str, Any]] = []
        new_messages = [message for messages in stored for message in messages]
        if new_messages:
            for hook in self.hooks:
                extra += await hook(conn, new_messages, now)
        results: list[Result] = []
        marks: list[tuple[int, dict[str, Any]]] = []
        done = iter(zip(stored, statuses, strict=True))
        for item in group:
            if item.batch is None:
                reason = item.reason or "not a WhatsApp notification"
                results.append(PayloadRejected(item.event_id, reason))
                marks.append(
                    (item.event_id, {"state": "rejected", "issues": [reason], "processed_at": now})
                )
                continue
            new, (changes, parked) = next(done)
            outcome = WebhookOutcome(
                item.event_id,
                stored=new,
                changes=changes,
                duplicates=len(item.batch.messages) - len(new),
                parked=parked,
                issues=item.batch.issues[:MAX_ISSUES_KEPT],
            )
            results.append(outcome)
            marks.append(
                (
                    item.event_id,
                    {
                        "state": "processed",
                        "messages": len(new),
                        "statuses": len(item.batch.statuses),
                        "issues": outcome.issues or None,
                        "processed_at": now,
                    },
                )
            )
        await _mark_events(conn, marks)
        return results, extra
