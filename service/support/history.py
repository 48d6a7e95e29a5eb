"""Support chats in the CRM: a customer is a contact, a chat a conversation on channel ``web``.

Messages are written behind the room stream: the stream is what delivery and resume use; the
database is the inbox agents search and page through. The room log adds each stored message's
record to the history feed in the same step (``historyfeed.py``), and the history writer (in the
worker) writes the feed's records in batches, one transaction a batch. A message's
``provider_id`` is ``web:<sender>:<client id>``, so writing one twice (a retried batch, a record
taken over from a writer that died) stores it once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import and_, bindparam, func, or_, select
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import Executable

from core.errors import StateBackendError
from service.db import Database
from service.db.tables.crm import crm_contacts, crm_convos, crm_messages
from service.db.types import UTCDateTime, utcnow
from service.db.upsert import upsert_stmt
from service.logging import get_logger
from service.support import history_sql
from service.support.historyfeed import FedRecord, HistoryFeed
from service.whatsapp.store import ensure_open_convos, existing_provider_ids

log = get_logger("kervan.support.history")

CHANNEL = "web"
BATCH = 1000
#: How long a stopping writer may go on writing what the feed holds.
DRAIN_SECONDS = 5.0
#: The longest wait between two reads of a failing feed.
MAX_RETRY_SECONDS = 5.0
#: How long the writer waits for more messages before writing a batch that is not full: a
#: transaction per message would cost the database (and this process) far more than the
#: messages do; the stream holds them meanwhile, so nothing waits on it but the inbox. Half a
#: second, not a tenth: each batch is a burst of this process's and the database's CPU beside
#: the serving processes, and fewer, larger bursts cost the relay's latency less (support bench,
#: alternating runs: p99 at 2,500 msg/s 5.4 / 5.4 ms against 8.0 / 6.1, at 500 msg/s 2.3 / 2.0
#: against 2.5 / 2.4; full load within the noise), for a CRM inbox up to half a second behind.
LINGER_SECONDS = 0.5
#: The linger is waited in this many steps, each followed by a read, and ends once a batch is
#: full. Waited at once, at full relay load it made the writer a 1.2-second cycle: it caught up
#: in back-to-back batches for about 0.7 s, then lingered half a second while five batches'
#: worth piled up, and the relay's latency rose and fell with it (median latency per 0.1 s of
#: send time 110-145 ms in the busy part, 75-100 ms in the quiet part; support bench, a trace
#: beside the worker's and MariaDB's CPU sampled every 50 ms). In steps, the writer writes a
#: batch whenever one is full and its CPU is even over time (the same trace: 70-116 ms); in
#: alternating one-process runs the full-load p99 was 1.33-1.41 times the p50 against 1.51-2.04.
LINGER_STEPS = 5
#: Customers whose open conversation the writer remembers (then it starts afresh).
KNOWN_LIMIT = 50_000


class Customer(NamedTuple):
    id: str  # the person id, also the room
    name: str
    language: str


class ChatRecord(NamedTuple):
    """A tuple, not a dataclass: the writer decodes a thousand a batch, and a frozen
    dataclass's ``__init__`` (a ``object.__setattr__`` per field) was most of that work."""

    customer: Customer
    sender: str
    role: str  # customer | admin
    client_id: str
    text: str
    at: float

    def encode(self) -> bytes:
        """The record as the history feed carries it (JSON)."""
        c = self.customer
        return orjson.dumps(
            {
                "c": [c.id, c.name, c.language],
                "s": self.sender,
                "r": self.role,
                "k": self.client_id,
                "t": self.text,
                "a": self.at,
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> ChatRecord:
        """ValueError, KeyError or TypeError for anything ``encode`` did not make."""
        data = orjson.loads(raw)
        customer_id, name, language = data["c"]
        sender, role, client_id, text, at = data["s"], data["r"], data["k"], data["t"], data["a"]
        # ``type() is``: orjson makes exact types, and this is the writer's per-record cost.
        if not (
            type(customer_id) is str
            and type(name) is str
            and type(language) is str
            and type(sender) is str
            and type(role) is str
            and type(client_id) is str
            and type(text) is str
            and type(at) in _NUMBERS
        ):
            raise TypeError("a history record's fields have the wrong types")
        return cls(Customer(customer_id, name, language), sender, role, client_id, text, float(at))


_NUMBERS = (float, int)


def provider_id(sender: str, client_id: str) -> str:
    return f"web:{sender}:{client_id}"[:191]


async def ensure_contacts(
    conn: AsyncConnection, dialect: str, customers: list[Customer], now: datetime
) -> dict[str, int]:
    """Customer id -> its CRM contact, created on first use; the unique ``web_id`` keeps it one
    contact when two processes create it at once (insert-or-ignore, then read)."""
    ids = list({c.id: c for c in customers})
    query = select(crm_contacts.c.id, crm_contacts.c.web_id).where(crm_contacts.c.web_id.in_(ids))
    found = {r.web_id: int(r.id) for r in await conn.execute(query)}
    missing = {c.id: c for c in customers if c.id not in found}
    if missing:
        rows = [
            {
                "web_id": c.id,
                "name": c.name,
                "locale": c.language,
                "created_at": now,
                "updated_at": now,
            }
            for c in missing.values()
        ]
        await conn.execute(upsert_stmt(dialect, crm_contacts, rows, index_elements=["web_id"]))
        found.update(
            {
                r.web_id: int(r.id)
                for r in await conn.execute(
                    select(crm_contacts.c.id, crm_contacts.c.web_id).where(
                        crm_contacts.c.web_id.in_(list(missing))
                    )
                )
            }
        )
    return found


async def store_message(
    db: Database, customer: Customer, *, text: str, kind: str = "text", payload: Any = None
) -> int:
    """One customer message outside a chat (a left message, a call-back request)."""
    now = utcnow()
    async with db.begin() as conn:
        contact = (await ensure_contacts(conn, db.dialect, [customer], now))[customer.id]
        convo = (await ensure_open_convos(conn, db.dialect, [contact], CHANNEL, now))[contact]
        await conn.execute(
            crm_messages.insert().values(
                convo_id=convo,
                direction="in",
                kind=kind,
                body=text,
                payload=payload,
                status="received",
                created_at=now,
            )
        )
        await conn.execute(
            crm_convos.update()
            .where(crm_convos.c.id == convo)
            .values(unread=crm_convos.c.unread + 1, last_inbound_at=now, last_activity_at=now)
        )
    return convo


_NOW = bindparam("now", type_=UTCDateTime())
_COUNT_INBOUND = (
    crm_convos.update()
    .where(crm_convos.c.id.in_(bindparam("ids", expanding=True)))
    .values(
        unread=crm_convos.c.unread + bindparam("count"),
        # SQLite's two-argument max() is its GREATEST.
        last_inbound_at=func.max(func.coalesce(crm_convos.c.last_inbound_at, _NOW), _NOW),
        last_activity_at=func.max(crm_convos.c.last_activity_at, _NOW),
    )
)
_TOUCH = (
    crm_convos.update()
    .where(crm_convos.c.id.in_(bindparam("ids", expanding=True)))
    .values(last_activity_at=func.max(crm_convos.c.last_activity_at, _NOW))
)


def activity_time(now: datetime) -> datetime:
    """The time a batch writes into its conversations' ``last_activity_at`` and
    ``last_inbound_at``: whole seconds (the statements keep a later time a row already holds:
    ``GREATEST``, SQLite's two-argument ``max``). A conversation
    list orders by activity; MariaDB rewrites the two indexes on it only when the value
    changes, so the batches of one second (ten at full load) change them once. Measured with
    500 conversations updated per batch, 10 batches a second: half the database's CPU for
    these updates."""
    return now.replace(microsecond=0)


_INSERT_MESSAGES: dict[str, Executable] = {}


def _insert_messages(dialect: str) -> Executable:
    """Insert-or-ignore of chat messages by ``provider_id``, one statement for every batch:
    executed with a list of rows (executemany), it is compiled once, not once per batch as a
    multi-row VALUES of the batch's own length would be."""
    found = _INSERT_MESSAGES.get(dialect)
    if found is None:
        if dialect == "sqlite":
            found = sqlite_insert(crm_messages).on_conflict_do_nothing(
                index_elements=["provider_id"]
            )
        else:
            # A no-op assignment: MariaDB's insert-or-ignore that still reports other errors.
            found = mysql_insert(crm_messages).on_duplicate_key_update(
                provider_id=crm_messages.c.provider_id
            )
        _INSERT_MESSAGES[dialect] = found
    return found


async def _still_open(conn: AsyncConnection, dialect: str, known: dict[str, int]) -> dict[str, int]:
    """Of the customers' conversations the writer found before, those still open (one query;
    a conversation closed or purged since is looked for again, as for a new customer)."""
    if not known:
        return {}
    ids = sorted(set(known.values()))
    if dialect == "mysql":
        open_ids = set(
            await history_sql.fetch_ints(
                await history_sql.driver_of(conn), history_sql.still_open(ids)
            )
        )
    else:
        query = select(crm_convos.c.id).where(
            crm_convos.c.id.in_(bindparam("ids", expanding=True)),
            crm_convos.c.open_key.is_not(None),
        )
        open_ids = {int(r.id) for r in await conn.execute(query, {"ids": ids})}
    return {customer: convo for customer, convo in known.items() if convo in open_ids}


async def _store_rows(
    conn: AsyncConnection,
    dialect: str,
    rows: list[tuple[int, ChatRecord, str]],
    by_count: dict[int, list[int]],
    quiet: list[int],
    activity: datetime,
) -> None:
    """The batch's messages, then its conversations: per count of new inbound messages one
    statement of one shape (a batch spans hundreds of chats, mostly with one or two each),
    then the touched ones."""
    if dialect == "mysql":
        driver = await history_sql.driver_of(conn)
        for statement in history_sql.insert_messages(driver, rows):
            await history_sql.run(driver, statement)
        for count, ids in sorted(by_count.items()):
            await history_sql.run(driver, history_sql.count_inbound(sorted(ids), count, activity))
        if quiet:
            await history_sql.run(driver, history_sql.touch(quiet, activity))
        return
    await conn.execute(
        _insert_messages(dialect),
        [
            {
                "convo_id": convo,
                "direction": "in" if r.role == "customer" else "out",
                "kind": "text",
                "body": r.text,
                "provider_id": key,
                "status": "received" if r.role == "customer" else "delivered",
                "created_at": datetime.fromtimestamp(r.at, UTC),
                "created_by": r.sender if r.role == "admin" else None,
                "marketing": False,
            }
            for convo, r, key in rows
        ],
    )
    for count, ids in sorted(by_count.items()):
        await conn.execute(_COUNT_INBOUND, {"ids": sorted(ids), "count": count, "now": activity})
    if quiet:
        await conn.execute(_TOUCH, {"ids": quiet, "now": activity})


async def write_batch(
    db: Database,
    records: list[ChatRecord],
    known: dict[str, int] | None = None,
    *,
    check_stored: bool = True,
) -> None:
    """One transaction for ``records``. ``known``: customer id -> the open web conversation
    found by an earlier batch, checked and updated here (the writer's memory across batches).

    ``check_stored=False``: none of the records can be in the database yet (each was accepted
    once by the room log, and this is the batch's first attempt), so the look-up of stored
    provider ids is skipped; a record given twice in the batch is still stored once.
    """
    now = utcnow()
    async with db.begin() as conn:
        keys = [provider_id(r.sender, r.client_id) for r in records]
        # A retried batch (its commit's answer lost) or a record given twice stores nothing
        # again and counts nothing again.
        stored = await existing_provider_ids(conn, keys) if check_stored else set()
        fresh: dict[str, ChatRecord] = {}
        for key, r in zip(keys, records, strict=True):
            if key not in stored:
                fresh.setdefault(key, r)
        if not fresh:
            return
        customers = {r.customer.id: r.customer for r in fresh.values()}
        convo_of = await _still_open(
            conn, db.dialect, {c: known[c] for c in customers if known is not None and c in known}
        )
        unknown = [c for c in customers.values() if c.id not in convo_of]
        if unknown:
            contacts = await ensure_contacts(conn, db.dialect, unknown, now)
            convos = await ensure_open_convos(
                conn, db.dialect, set(contacts.values()), CHANNEL, now
            )
            convo_of.update({customer: convos[contact] for customer, contact in contacts.items()})
        rows = [(convo_of[r.customer.id], r, key) for key, r in fresh.items()]
        inbound: dict[int, int] = {}
        for convo, r, _ in rows:
            if r.role == "customer":
                inbound[convo] = inbound.get(convo, 0) + 1
        by_count: dict[int, list[int]] = {}
        for convo, count in inbound.items():
            by_count.setdefault(count, []).append(convo)
        quiet = sorted(set(convo_of.values()) - inbound.keys())
        await _store_rows(conn, db.dialect, rows, by_count, quiet, activity_time(now))
    if known is not None:  # committed
        if len(known) > KNOWN_LIMIT:
            known.clear()
        known.update(convo_of)


class HistoryWriter:
    """Writes the history feed's records into the database in batches (a component): in the
    worker, or inside the API process where the worker runs (the embedded mode)."""

    name = "support-history-writer"

    def __init__(
        self,
        db: Database,
        feed: HistoryFeed,
        *,
        retry_seconds: float = 1.0,
        linger_seconds: float = LINGER_SECONDS,
        block_seconds: float = 1.0,
        on_written: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._db = db
        self._feed = feed
        self._linger = linger_seconds
        self._block = block_seconds
        #: Records taken and not yet marked done: written again by ``stop`` if the writer was
        #: cancelled before it finished (a committed batch written twice stores nothing twice).
        self._batch: list[FedRecord] = []
        #: Awaited after each batch is committed (the CRM's conversation lists change).
        self._on_written = on_written
        self._task: asyncio.Task[None] | None = None
        self._retry = retry_seconds
        self.written = 0
        #: Customer id -> the open conversation the last batches wrote to.
        self._known: dict[str, int] = {}
        self._feed_ok = True
        self._progress = asyncio.Event()

    @property
    def healthy(self) -> bool:
        """False while the feed (the state backend) fails the writer's reads."""
        return self._feed_ok

    async def backlog(self) -> int | None:
        """Records not yet in the database; None while the state backend does not answer."""
        try:
            return await self._feed.backlog()
        except StateBackendError:
            return None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="support-history")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                await self._drain()
        except TimeoutError:
            log.warning("support history: writing what is left took too long; left in the feed")
        except Exception as exc:  # the database or the state backend is gone at shutdown
            log.warning("support history: what is left stays in the feed: %s", exc)
        finally:
            await self._feed.close()

    async def flush(self) -> None:
        """Wait until every record added so far is in the database (tests, shutdown)."""
        while self._batch or await self._feed.backlog():
            # Woken by each batch written; the feed is asked again now and then all the same
            # (another writer may be the one writing).
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    await self._progress.wait()

    async def _run(self) -> None:
        delay = 0.0
        while True:
            try:
                await self._take()
            except Exception as exc:  # the state backend: it keeps the records meanwhile
                self._feed_ok = False
                delay = min(MAX_RETRY_SECONDS, delay * 2 or self._retry)
                log.warning("support history feed not read, retrying: %s", exc)
                await asyncio.sleep(delay)
                continue
            self._feed_ok = True
            delay = 0.0
            if self._batch:
                await self._write(self._batch)
                self._batch = []

    async def _take(self) -> None:
        """Into ``_batch`` as soon as taken: a stop meanwhile writes them."""
        self._batch = await self._feed.take(BATCH, block=self._block)
        if not self._batch or self._linger <= 0:
            return
        # A moment for more (one transaction for what comes meanwhile), in steps that end as
        # soon as a batch is full.
        step = self._linger / LINGER_STEPS
        for _ in range(LINGER_STEPS):
            if len(self._batch) >= BATCH:
                return
            await asyncio.sleep(step)
            self._batch += await self._feed.take(BATCH - len(self._batch), block=0)

    async def _write(self, batch: list[FedRecord]) -> None:
        # Only a record offered before (its writer died, or the commit's answer was lost)
        # can find itself stored.
        check = any(r.retried for r in batch)
        while True:
            try:
                await self._store(batch, check_stored=check)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the feed still holds them; keep trying, say so
                check = True
                log.warning("support history batch not written, retrying: %s", exc)
                await asyncio.sleep(self._retry)

    async def _store(self, batch: list[FedRecord], *, check_stored: bool) -> None:
        """Write the batch's records, then mark them done in the feed."""
        records, unreadable = _decoded(batch)
        if records:
            await write_batch(self._db, records, self._known, check_stored=check_stored)
        await self._feed.done([r.id for r in batch])
        self.written += len(records)
        self._progress.set()
        if unreadable:
            log.error("support history: %d unreadable records dropped", unreadable)
        if self._on_written is not None and records:
            await self._on_written()

    async def _drain(self) -> None:
        """At a stop: the batch the writer was cancelled in, then what the feed still holds
        (embedded: nothing else would write it; scaled: spares another writer the wait)."""
        batch, self._batch = self._batch, []
        if not batch:
            batch = await self._feed.take(BATCH, block=0)
        while batch:
            # The cancelled batch's commit may have happened: look stored ids up.
            await self._store(batch, check_stored=True)
            batch = await self._feed.take(BATCH, block=0)


def _decoded(batch: list[FedRecord]) -> tuple[list[ChatRecord], int]:
    records: list[ChatRecord] = []
    for fed in batch:
        try:
            records.append(ChatRecord.decode(fed.record))
        except (ValueError, KeyError, TypeError):
            continue
    return records, len(batch) - len(records)


def page_cursor(at: datetime, message_id: int) -> str:
    return f"{round(at.timestamp() * 1_000_000)}.{message_id}"


def parse_cursor(cursor: str) -> tuple[datetime, int] | None:
    micros, dot, message_id = cursor.partition(".")
    if not dot or not micros.isdigit() or not message_id.isdigit():
        return None
    return datetime.fromtimestamp(int(micros) / 1_000_000, UTC), int(message_id)


async def history_page(
    db: Database, customer: str, *, before: tuple[datetime, int] | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """The customer's web chat messages, the newest ``limit`` before the cursor, oldest first.

    Ordered by the time each message was sent (then id): two processes write one chat's
    messages in batches of their own, so ids alone need not follow the chat's order.
    """
    async with db.connect() as conn:
        convo_ids = [
            int(r.id)
            for r in await conn.execute(
                select(crm_convos.c.id)
                .join(crm_contacts, crm_contacts.c.id == crm_convos.c.contact_id)
                .where(crm_contacts.c.web_id == customer, crm_convos.c.channel == CHANNEL)
            )
        ]
        if not convo_ids:
            return [], None
        query = select(crm_messages).where(crm_messages.c.convo_id.in_(convo_ids))
        if before is not None:
            at, message_id = before
            query = query.where(
                or_(
                    crm_messages.c.created_at < at,
                    and_(crm_messages.c.created_at == at, crm_messages.c.id < message_id),
                )
            )
        newest_first = query.order_by(crm_messages.c.created_at.desc(), crm_messages.c.id.desc())
        rows = list((await conn.execute(newest_first.limit(limit + 1))).all())
    more = len(rows) > limit
    rows = rows[:limit]
    rows.reverse()
    items = [
        {
            "id": int(r.id),
            "direction": r.direction,
            "text": r.body,
            "at": r.created_at.isoformat(),
            "sender": r.created_by,
        }
        for r in rows
    ]
    cursor = page_cursor(rows[0].created_at, int(rows[0].id)) if more and rows else None
    return items, cursor
