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
  one after the other.

The stages run at the same time on different connections (the next group is stored while the
previous one is processed); on SQLite, whose one writer they share, they take turns. A lone
delivery starts at once; the deliveries that arrive while a group is in flight form the next
group (at most ``max_group`` of them and ``max_group_bytes`` of bodies), and while a burst is
on a stage waits up to ``group_wait`` for more before it starts a group.

A group's transaction that fails is rolled back whole. After a transient database error (a lock
wait timeout, a deadlock, a lost connection: :func:`transient`) it is run again, whole, a few
times after a short jittered pause. Only an error that is not transient, or one that outlasts
the retries, takes the group apart: each delivery then goes on its own, in its own transaction
with the same retries, so that a delivery whose own data fails (a poison delivery) fails alone
and never its neighbours.

A raw event is applied by exactly one transaction: the processing transaction first claims its
events (:meth:`WebhookProcessor._claim`) and applies only those still ``received``, and their
state changes in that same transaction. A crash between the two steps leaves raw events
``received``; ``service/whatsapp/recovery.py`` processes them when the service starts again (and
any process's sweep, once they are old), through the same claim.

At most ``max_pending`` deliveries are accepted and not yet answered; one more is refused
(:class:`Overloaded`, 503 with ``Retry-After``) before anything of it is stored.
"""

from __future__ import annotations

import asyncio
import base64
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson
from sqlalchemy import false, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.clock import Clock
from core.errors import BackendUnavailable, Conflict, NotFound, StorageError
from core.jobs.backoff import full_jitter_delay
from core.whatsapp.events import WebhookBatch
from core.whatsapp.parse import InvalidPayload, parse_webhook
from service.backends import Backends
from service.db import Database
from service.db.tables.crm import wa_webhook_events
from service.db.types import from_timestamp
from service.logging import get_logger
from service.whatsapp import live
from service.whatsapp.group_commit import Entry, GroupRunner, resolve
from service.whatsapp.metrics import (
    INBOUND_MESSAGES,
    STATUS_UPDATES,
    WEBHOOK_DELIVERIES,
    WEBHOOK_PENDING,
    WEBHOOK_RETRIES,
)
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
#: Who processes a stored delivery, which decides how its raw event is claimed
#: (:meth:`WebhookProcessor._claim`): the request that stored it (``live``), the recovery of
#: unprocessed events (``recovery``), or an admin's replay (``replay``).
Claim = Literal["live", "recovery", "replay"]
MAX_ISSUES_KEPT = 50
#: Most runs of one transaction (a group's, or a single delivery's) on transient errors.
ATTEMPTS = 4
#: Pauses before running a transaction again: full jitter below 10, 20, 40 ms; so that the
#: transactions that failed together (the victims of one deadlock, every writer after a lost
#: connection) do not meet again in step.
BACKOFF_BASE_SECONDS = 0.01
BACKOFF_CAP_SECONDS = 0.1
#: Most deliveries per group-committed transaction.
DEFAULT_MAX_GROUP = 64
#: Most raw body bytes per group (one delivery larger than this still goes, alone): keeps a
#: group's INSERT far below MariaDB's max_allowed_packet (16 MB by default).
DEFAULT_MAX_GROUP_BYTES = 4 * 1024 * 1024
#: While a burst is on (a stage's group before had more than one delivery), how long the stage
#: waits for more before it starts the next group; a lone delivery never waits. A few ms make
#: the groups of a burst several times larger, for fewer transactions and less CPU each.
DEFAULT_GROUP_WAIT_SECONDS = 0.004
#: Most deliveries accepted and not answered yet (``KERVAN_WHATSAPP_WEBHOOK_MAX_PENDING``).
DEFAULT_MAX_PENDING = 2048
#: Retry-After of a delivery refused because too many are pending: a full queue drains in about
#: two seconds at the measured rate (over 1,000 deliveries/s).
OVERLOADED_RETRY_AFTER_SECONDS = 2
#: How long stopping waits for groups in flight before abandoning them (they are stored, and
#: recovered on the next start).
CLOSE_TIMEOUT_SECONDS = 5.0

#: The database errors after which the same transaction, run again, may well succeed. The
#: database boundary (``service/db``) wraps every driver error into a StorageError that keeps
#: the driver's message, MariaDB's error code first (as ``service/speculation/store.py`` reads
#: it): 1205 lock wait timeout, 1213 deadlock, 1927 connection killed, 2006 server gone away,
#: 2013 connection lost, 4031 disconnected as idle; SQLite's "database is locked" is its busy
#: timeout running out while another process writes.
_TRANSIENT = re.compile(r"\((?:1205|1213|1927|2006|2013|4031),|database is locked")


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a database failure that running the transaction again may cure."""
    return isinstance(exc, StorageError) and _TRANSIENT.search(exc.message) is not None


def _retryable(exc: BaseException) -> bool:
    # A conflict is a concurrent writer that inserted the same new message or contact first:
    # the transaction run again sees its row (the message is then a duplicate).
    return isinstance(exc, Conflict) or transient(exc)


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


class NotClaimed(Exception):
    """A recovered delivery that another transaction holds or has processed: not ours to do."""

    def __init__(self, event_id: int) -> None:
        super().__init__(f"webhook event {event_id} is processed elsewhere")
        self.event_id = event_id


class Overloaded(BackendUnavailable):
    """Too many deliveries are pending; this one was refused before anything was stored."""

    def __init__(self, max_pending: int) -> None:
        super().__init__(
            "webhooks",
            "too many webhook deliveries are pending; deliver again later",
            details={"max_pending": max_pending, "retry_after": OVERLOADED_RETRY_AFTER_SECONDS},
        )
        self.max_pending = max_pending
        self.retry_after = OVERLOADED_RETRY_AFTER_SECONDS


@dataclass
class WebhookOutcome:
    event_id: int
    stored: list[StoredInbound] = field(default_factory=list)
    changes: list[StatusChange] = field(default_factory=list)
    duplicates: int = 0
    parked: int = 0
    issues: list[str] = field(default_factory=list)
    #: Another transaction processed the delivery (a recovery, between this process storing it
    #: and processing it); answered as a redelivery would be, and not counted again.
    elsewhere: bool = False


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
    #: When it arrived (or, for a replay, when that started).
    now: datetime
    claim: Claim


@dataclass(frozen=True, slots=True)
class _Parsed:
    event_id: int
    now: datetime
    claim: Claim
    batch: WebhookBatch | None
    #: Why the body is not a notification, when it is not.
    reason: str | None = None


Result = WebhookOutcome | Exception


def _parse(item: StoredDelivery) -> _Parsed:
    try:
        batch = parse_webhook(orjson.loads(item.body))
    except (orjson.JSONDecodeError, InvalidPayload) as exc:
        reason = str(exc) if isinstance(exc, InvalidPayload) else "the body is not valid JSON"
        return _Parsed(item.event_id, item.now, item.claim, None, reason)
    return _Parsed(item.event_id, item.now, item.claim, batch)


def _rejected(item: _Parsed) -> PayloadRejected:
    return PayloadRejected(item.event_id, item.reason or "not a WhatsApp notification")


def _unclaimed(item: _Parsed, state: str | None) -> Result:
    """The result of a delivery whose raw event this transaction does not apply (``state``:
    the event's state, None when it is held by another transaction or does not exist)."""
    if item.claim == "recovery":
        return NotClaimed(item.event_id)
    if state is None:
        return NotFound("no such webhook event", details={"event_id": item.event_id})
    if item.batch is None:
        return _rejected(item)
    if state != "processed":
        # Failed where it was processed: Meta, answered 503, delivers it again.
        return StorageError(f"webhook event {item.event_id} failed where it was processed")
    return WebhookOutcome(
        item.event_id,
        duplicates=len(item.batch.messages),
        issues=item.batch.issues[:MAX_ISSUES_KEPT],
        elsewhere=True,
    )


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
    if not isinstance(result, WebhookOutcome) or result.elsewhere:
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
        self._pending = 0
        self._rng = random.Random()

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

    async def _backoff(self, attempt: int) -> None:
        await asyncio.sleep(
            full_jitter_delay(attempt, BACKOFF_BASE_SECONDS, BACKOFF_CAP_SECONDS, self._rng)
        )

    # ------------------------------------------------------------------ entry points

    @property
    def pending(self) -> int:
        """Deliveries accepted by :meth:`handle` whose work has not ended yet."""
        return self._pending

    async def handle(
        self, body: bytes, *, max_pending: int = DEFAULT_MAX_PENDING
    ) -> WebhookOutcome:
        """Stores, then processes one delivery (its body must already be signature-checked).

        Returns once both are committed; raises :class:`Overloaded` when ``max_pending``
        deliveries are pending already (nothing is stored then), :class:`PayloadRejected` for a
        body that is not a notification (stored and marked rejected) and the storage error when
        storing or processing failed (the raw event, if stored, is then marked failed).
        """
        if self._pending >= max_pending:
            WEBHOOK_DELIVERIES.labels("overloaded").inc()
            raise Overloaded(max_pending)
        future: asyncio.Future[WebhookOutcome] = asyncio.get_running_loop().create_future()
        self._pending += 1
        WEBHOOK_PENDING.inc()
        future.add_done_callback(self._ended)
        self._store.put(_Received(body, self._now()), future)
        # Shielded: a requester that goes away does not end the work (a stored delivery is
        # still processed), so the delivery stays pending until its future is resolved.
        return await asyncio.shield(future)

    def _ended(self, _future: asyncio.Future[WebhookOutcome]) -> None:
        self._pending -= 1
        WEBHOOK_PENDING.dec()

    async def process(self, event_id: int, body: bytes, now: datetime) -> WebhookOutcome:
        """Processes a stored delivery again, whatever its state (with whatever else is being
        processed); its log row ends ``processed``, ``rejected`` or ``failed``."""
        outcome: WebhookOutcome = await self._process.submit(
            StoredDelivery(event_id, body, now, "replay")
        )
        return outcome

    async def process_many(self, items: Sequence[StoredDelivery]) -> list[Result]:
        """Processes stored deliveries (a recovery); each one's outcome or exception
        (:class:`NotClaimed` for one that another transaction holds or has processed)."""
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
            ids = await self._insert(rows)
        except Exception as exc:
            if len(group) == 1:
                resolve(group[0][1], exc)
                return
            # Not transient, or still failing: each on its own, so that a delivery whose own
            # data is refused fails alone.
            log.warning("storing a group of %d webhooks failed (%s); one by one", len(group), exc)
            for entry in group:
                await self._store_group([entry])
            return
        for (item, future), event_id in zip(group, ids, strict=True):
            self.in_flight.add(event_id)
            self._process.put(StoredDelivery(event_id, item.body, item.now, "live"), future)

    async def _insert(self, rows: list[dict[str, Any]]) -> list[int]:
        """Stores raw events in one transaction, run again after a transient error; their ids."""
        for attempt in range(1, ATTEMPTS + 1):
            ids: list[int] = []
            try:
                async with self._write() as conn:
                    ids = await _insert_events(conn, rows)
                return ids
            except Exception as exc:
                if ids and await self._committed_ids(ids):
                    # The commit went through and only its answer was lost: storing them again
                    # would store every delivery twice.
                    return ids
                if not transient(exc) or attempt == ATTEMPTS:
                    raise
                WEBHOOK_RETRIES.labels("store").inc()
            await self._backoff(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _committed_ids(self, ids: Sequence[int]) -> bool:
        """Whether the raw events ``ids`` exist: the commit whose answer failed took place."""
        try:
            async with self._db.connect() as conn:
                found = await conn.scalar(
                    select(func.count())
                    .select_from(wa_webhook_events)
                    .where(wa_webhook_events.c.id.in_(ids))
                )
        except Exception:  # cannot tell: storing again at worst leaves a copy, which the
            return False  # recovery processes as the redelivery it is
        return found == len(ids)

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
        """The group in one transaction; if that fails for good, one by one, so that the
        delivery at fault fails alone."""
        try:
            results, extra = await self._transaction(group)
        except Exception as exc:
            log.warning(
                "processing a group of %d webhooks failed (%s: %s); one by one",
                len(group),
                type(exc).__name__,
                exc,
            )
            return [await self._process_one(item) for item in group]
        await self._committed(group, results, extra)
        return results

    async def _process_one(self, item: _Parsed) -> Result:
        """One delivery in its own transaction; marked failed when that fails for good."""
        try:
            results, extra = await self._transaction([item])
        except Exception as exc:
            await self._fail(item)
            return exc
        await self._committed([item], results, extra)
        return results[0]

    async def _transaction(
        self, group: Sequence[_Parsed]
    ) -> tuple[list[Result], list[dict[str, Any]]]:
        """Applies ``group`` in one transaction, run again, whole, after a transient error or a
        conflict. Two deliveries of the same new message can race: the loser's unique-key
        conflict rolls its transaction back and the next run sees the message as a duplicate.
        InnoDB may pick a transaction as a deadlock victim, or time out its lock wait; a lost
        connection is replaced. Each rolls the transaction back whole."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self._write() as conn:
                    return await self._apply(conn, group)
            except Exception as exc:
                if not _retryable(exc) or attempt == ATTEMPTS:
                    raise
                WEBHOOK_RETRIES.labels("process").inc()
            await self._backoff(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _committed(
        self, parsed: Sequence[_Parsed], results: Sequence[Result], extra: list[dict[str, Any]]
    ) -> None:
        for item, result in zip(parsed, results, strict=True):
            _count(result, len(item.batch.statuses) if item.batch is not None else 0)
        await live.publish(self._backends, _live_events(results, extra))

    async def _fail(self, item: _Parsed) -> None:
        WEBHOOK_DELIVERIES.labels("failed").inc()
        query = update(wa_webhook_events).where(wa_webhook_events.c.id == item.event_id)
        if item.claim != "replay":
            # Only while unprocessed: another process may have processed it since this
            # transaction rolled back.
            query = query.where(wa_webhook_events.c.state == "received")
        try:
            async with self._write() as conn:
                await conn.execute(query.values(state="failed", processed_at=self._now()))
        except Exception:  # the original error is the one worth reporting
            log.exception("could not mark webhook event %s failed", item.event_id)

    async def _claim(self, conn: AsyncConnection, group: Sequence[_Parsed]) -> list[Result | None]:
        """Takes the group's raw events for this transaction: for each delivery None when this
        transaction applies it, else its result (:func:`_unclaimed`).

        An event is applied only while it is ``received`` (a replay whatever its state), and its
        state changes in the same transaction, so every event is applied exactly once, however
        many transactions of however many processes (live groups, recoveries) reach for it.

        - MariaDB: the events are row-locked (``FOR UPDATE``) before anything is applied, and
          their states read under the lock are the latest committed ones. A live delivery or a
          replay waits for a transaction that holds its event, then finds what that left; a
          recovery skips events another transaction holds (``SKIP LOCKED``), so that recoveries
          of several processes divide the events between them instead of waiting on each other.
          Events are claimed by the first statement, before any CRM row is locked, and a
          transaction waits for events only before it takes any by skipping: a claim never
          closes a lock cycle.
        - SQLite: one writer at a time for the whole database, across processes. A write comes
          first (an UPDATE that matches no row), so that the transaction holds the write lock
          before it reads the states: SQLite starts a transaction at its first write, and a
          state read before it would not be protected. No other writer, of this process or
          another, can change them until this transaction ends.
        """
        every = sorted({item.event_id for item in group})
        events = wa_webhook_events.c
        states: dict[int, str] = {}
        query = select(events.id, events.state).order_by(events.id)
        if self._db.dialect == "sqlite":
            # Matches no row: takes the write lock without rewriting the events' bodies.
            await conn.execute(update(wa_webhook_events).where(false()).values(state=events.state))
            found = await conn.execute(query.where(events.id.in_(every)))
            states = {int(r.id): str(r.state) for r in found}
        else:
            waiting = sorted({item.event_id for item in group if item.claim != "recovery"})
            skipping = sorted(set(every) - set(waiting))
            # Waiting first: while it waits, this transaction holds none of the events it
            # recovers, which a live group elsewhere may be waiting for.
            for ids, skip in ((waiting, False), (skipping, True)):
                if ids:
                    locked = query.where(events.id.in_(ids)).with_for_update(skip_locked=skip)
                    states.update({int(r.id): str(r.state) for r in await conn.execute(locked)})
        verdicts: list[Result | None] = []
        taken: set[int] = set()
        for item in group:
            state = states.get(item.event_id)
            if item.event_id in taken:  # twice in one group: applied once, by the first
                verdicts.append(_unclaimed(item, "processed"))
            elif state is not None and (state == "received" or item.claim == "replay"):
                taken.add(item.event_id)
                verdicts.append(None)
            else:
                verdicts.append(_unclaimed(item, state))
        return verdicts

    async def _apply(
        self, conn: AsyncConnection, group: Sequence[_Parsed]
    ) -> tuple[list[Result], list[dict[str, Any]]]:
        """Applies ``group`` inside ``conn``'s transaction, as if one after the other; each
        delivery's outcome (or :class:`PayloadRejected`, or its claim's result) and the hooks'
        extra live events."""
        now = self._now()
        verdicts = await self._claim(conn, group)
        mine = [item for item, verdict in zip(group, verdicts, strict=True) if verdict is None]
        accepted = [(item, item.batch) for item in mine if item.batch is not None]
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
        for item, verdict in zip(group, verdicts, strict=True):
            if verdict is not None:
                results.append(verdict)
                continue
            if item.batch is None:
                rejected = _rejected(item)
                results.append(rejected)
                marks.append(
                    (
                        item.event_id,
                        {"state": "rejected", "issues": [rejected.reason], "processed_at": now},
                    )
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
