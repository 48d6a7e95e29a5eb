"""Transient database errors during a group's commit (issue 13): the group's transaction is run
again whole, and only a delivery whose own data fails is taken apart from its neighbours.

Errors are injected at the database boundary: a driver error raised as a statement goes to the
database (SQLAlchemy's ``before_cursor_execute``), which ``service/db`` wraps like a real one.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection

from core.errors import StorageError
from service.db import Database
from service.db.tables.crm import crm_messages, wa_webhook_events
from service.metrics import REGISTRY
from service.whatsapp import webhook as webhook_module
from service.whatsapp.facility import get_whatsapp
from service.whatsapp.store import StoredInbound
from service.whatsapp.webhook import WebhookProcessor, decode_raw, transient
from tests.whatsapp import payloads as p
from tests.whatsapp.conftest import post_webhook, runtime_of
from tests.whatsapp.dbutil import count, rows

#: Driver errors as each database raises them: (MariaDB error, SQLite error).
TRANSIENT: dict[str, tuple[tuple[Any, ...], tuple[Any, ...]]] = {
    "lock_wait_timeout": (
        (1205, "Lock wait timeout exceeded; try restarting transaction"),
        ("database is locked",),
    ),
    "lost_connection": (
        (2013, "Lost connection to MySQL server during query"),
        ("database is locked",),  # a file has no connection to lose; its busy lock instead
    ),
}
PERMANENT = ((1406, "Data too long for column 'body' at row 1"), ("string or blob too big",))

Matcher = Callable[[str, Any], bool]


class Injector:
    """Raises driver errors from chosen statements, as the database itself would."""

    def __init__(self, db: Database) -> None:
        self.dialect = db.dialect
        self.rules: list[tuple[Matcher, str, tuple[tuple[Any, ...], tuple[Any, ...]], int]] = []
        self.fired: list[str] = []

    def add(
        self,
        matches: Matcher,
        errors: tuple[tuple[Any, ...], tuple[Any, ...]],
        *,
        kind: str = "OperationalError",
        times: int = 1,
    ) -> None:
        self.rules.append((matches, kind, errors, times))

    def __call__(
        self,
        conn: Any,
        _cursor: Any,
        statement: str,
        parameters: Any,
        _context: Any,
        _executemany: bool,
    ) -> tuple[str, Any]:
        for index, (matches, kind, errors, times) in enumerate(self.rules):
            if times and matches(statement, parameters):
                self.rules[index] = (matches, kind, errors, times - 1)
                args = errors[0] if self.dialect == "mysql" else errors[1]
                self.fired.append(f"{kind}{args}")
                dbapi = conn.dialect.loaded_dbapi
                # SQLAlchemy's aiosqlite adapter has no DataError; its base class stands in.
                raise getattr(dbapi, kind, dbapi.DatabaseError)(*args)
        return statement, parameters


@contextmanager
def injecting(db: Database) -> Iterator[Injector]:
    injector = Injector(db)
    event.listen(db.engine.sync_engine, "before_cursor_execute", injector)
    try:
        yield injector
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", injector)


def marks_events(statement: str, _parameters: Any) -> bool:
    """The UPDATE that writes processed events' final state, the last statement of a group."""
    return statement.startswith("UPDATE wa_webhook_events") and "processed_at" in statement


def stores_events(statement: str, _parameters: Any) -> bool:
    return statement.startswith("INSERT INTO wa_webhook_events")


def retries(stage: str) -> float:
    return REGISTRY.get_sample_value("kervan_whatsapp_webhook_retries_total", {"stage": stage}) or 0


def delivery(prefix: str, n: int, body: str = "selam") -> dict[str, Any]:
    wa_id = f"90538{n:07d}"
    return p.inbound(wa_id, "Geçici", p.text(wa_id, f"wamid.{prefix}{n}", body))


async def until(predicate: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 30
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@asynccontextmanager
async def one_then_a_group(
    processor: WebhookProcessor, on_group: Callable[[], None]
) -> AsyncIterator[asyncio.Event]:
    """The first delivery is processed alone and held until the yielded event is set; the
    deliveries stored meanwhile are processed together next, ``on_group`` called just before."""
    gate = asyncio.Event()
    groups = 0

    async def hold() -> None:
        nonlocal groups
        groups += 1
        if groups == 1:
            await gate.wait()
        elif groups == 2:
            on_group()

    processor.hold = hold
    try:
        yield gate
    finally:
        gate.set()
        processor.hold = None


async def post_as_a_group(
    client: httpx.AsyncClient, payloads: Sequence[Any], on_group: Callable[[], None]
) -> list[httpx.Response]:
    runtime = runtime_of(client)
    processor = get_whatsapp(runtime).processor
    async with one_then_a_group(processor, on_group) as gate:
        first = asyncio.create_task(post_webhook(client, payloads[0]))

        async def first_stored() -> bool:
            return await count(runtime.db, wa_webhook_events) == 1

        await until(first_stored, "the first delivery to be stored")
        rest = [asyncio.create_task(post_webhook(client, body)) for body in payloads[1:]]

        async def all_stored() -> bool:
            return await count(runtime.db, wa_webhook_events) == len(payloads)

        await until(all_stored, "every delivery to be stored")
        gate.set()
        return list(await asyncio.gather(first, *rest))


def test_driver_errors_are_classified_by_what_a_retry_can_cure() -> None:
    def wrapped(driver_error: str) -> StorageError:  # as service/db wraps a driver error
        return StorageError(f"database error: OperationalError: {driver_error}")

    for code in (1205, 1213, 1927, 2006, 2013, 4031):
        assert transient(wrapped(f"({code}, 'message')")), code
    assert transient(StorageError("database error: OperationalError: database is locked"))
    assert not transient(wrapped("(1406, \"Data too long for column 'body' at row 1\")"))
    assert not transient(wrapped("(1064, 'You have an error in your SQL syntax')"))
    assert not transient(StorageError("stored 1 webhook events for 2 deliveries"))
    assert not transient(RuntimeError("(1213, 'not from the database')"))


@pytest.mark.parametrize("kind", sorted(TRANSIENT))
async def test_a_transient_error_runs_the_processing_group_again_whole(
    client: httpx.AsyncClient, kind: str
) -> None:
    runtime = runtime_of(client)
    processor = get_whatsapp(runtime).processor
    if kind == "lost_connection" and runtime.db.dialect == "sqlite":
        pytest.skip("a SQLite file has no connection to lose (its busy lock is the other case)")
    calls: list[int] = []

    async def counting(
        _conn: AsyncConnection, stored: Sequence[StoredInbound], _now: object
    ) -> list[dict[str, Any]]:
        calls.append(len(stored))  # once per transaction, with all its new messages
        return []

    processor.hooks.append(counting)
    payloads = [delivery("TR", n) for n in range(6)]
    before = retries("process")
    with injecting(runtime.db) as injector:
        # The group's final statement fails once: everything it did is rolled back.
        responses = await post_as_a_group(
            client, payloads, lambda: injector.add(marks_events, TRANSIENT[kind])
        )
    processor.hooks.remove(counting)
    assert len(injector.fired) == 1
    assert [r.status_code for r in responses] == [200] * 6
    assert [r.json()["messages"] for r in responses] == [1] * 6
    assert calls == [1, 5, 5]  # the group of five failed once, then committed whole
    assert retries("process") - before == 1
    assert await count(runtime.db, crm_messages) == 6
    events = await rows(runtime.db, wa_webhook_events)
    assert [(e.state, e.messages) for e in events] == [("processed", 1)] * 6


@pytest.mark.parametrize("kind", sorted(TRANSIENT))
async def test_a_transient_error_runs_the_store_group_again_whole(
    client: httpx.AsyncClient, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = runtime_of(client)
    if kind == "lost_connection" and runtime.db.dialect == "sqlite":
        pytest.skip("a SQLite file has no connection to lose (its busy lock is the other case)")
    groups: list[int] = []
    original = webhook_module._insert_events

    async def recording(conn: AsyncConnection, rows_: list[dict[str, Any]]) -> list[int]:
        groups.append(len(rows_))
        return await original(conn, rows_)

    monkeypatch.setattr(webhook_module, "_insert_events", recording)
    payloads = [delivery("TS", n) for n in range(6)]
    with injecting(runtime.db) as injector:
        injector.add(stores_events, TRANSIENT[kind])
        responses = await asyncio.gather(*(post_webhook(client, body) for body in payloads))
    assert len(injector.fired) == 1
    assert [r.status_code for r in responses] == [200] * 6
    # The failed group (whatever its size) was stored again as one group, not one by one.
    assert groups[0] == groups[1] and sum(groups[1:]) == 6, groups
    events = await rows(runtime.db, wa_webhook_events)
    bodies = sorted(decode_raw(e.body, e.body_encoding) for e in events)
    assert bodies == sorted(orjson.dumps(body) for body in payloads)  # each stored once
    assert {e.state for e in events} == {"processed"}
    assert await count(runtime.db, crm_messages) == 6


async def test_a_store_commit_whose_answer_is_lost_stores_each_delivery_once(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection is lost after the COMMIT went through: the rows are there, the
    transaction reported failed. Storing them again would store every delivery twice."""
    runtime = runtime_of(client)
    db = runtime.db
    inserted: set[int] = set()
    lost: list[int] = []
    original_insert = webhook_module._insert_events
    original_begin = db.begin

    async def noting(conn: AsyncConnection, rows_: list[dict[str, Any]]) -> list[int]:
        inserted.add(id(conn))
        return await original_insert(conn, rows_)

    @asynccontextmanager
    async def begin() -> AsyncIterator[AsyncConnection]:
        async with original_begin() as conn:
            yield conn
        if id(conn) in inserted and not lost:
            lost.append(1)
            raise StorageError(
                "database error: OperationalError: (2013, 'Lost connection to MySQL server "
                "during query')"
            )

    monkeypatch.setattr(webhook_module, "_insert_events", noting)
    monkeypatch.setattr(db, "begin", begin)
    payloads = [delivery("TL", n) for n in range(6)]
    responses = await asyncio.gather(*(post_webhook(client, body) for body in payloads))
    assert lost == [1]
    assert [r.status_code for r in responses] == [200] * 6
    assert [r.json()["messages"] for r in responses] == [1] * 6
    events = await rows(db, wa_webhook_events)
    bodies = sorted(decode_raw(e.body, e.body_encoding) for e in events)
    assert bodies == sorted(orjson.dumps(body) for body in payloads)  # each stored once
    assert {e.state for e in events} == {"processed"}


def _provider_ids(parameters: Any) -> set[str]:
    return set(re.findall(r"wamid\.TP\d+", repr(parameters)))


async def test_a_poison_delivery_fails_alone_through_transient_errors(
    client: httpx.AsyncClient,
) -> None:
    """One delivery's message is refused by the database for good: the group fails, and each
    delivery goes on its own. A transient error on a neighbour's own transaction then is run
    again, not taken for its fault: only the poison delivery fails."""
    runtime = runtime_of(client)
    payloads = [delivery("TP", n, "zehir" if n == 3 else "selam") for n in range(6)]
    poison = "wamid.TP3"

    with injecting(runtime.db) as injector:

        def saves_poison(statement: str, parameters: Any) -> bool:
            if not statement.startswith("INSERT INTO crm_messages"):
                return False
            ids = _provider_ids(parameters)
            if poison in ids and len(ids) > 1:  # the group's insert: isolation begins
                injector.add(saves_neighbour, TRANSIENT["lock_wait_timeout"])
            return poison in ids

        def saves_neighbour(statement: str, parameters: Any) -> bool:
            return statement.startswith("INSERT INTO crm_messages") and poison not in (
                _provider_ids(parameters)
            )

        responses = await post_as_a_group(
            client,
            payloads,
            lambda: injector.add(saves_poison, PERMANENT, kind="DataError", times=1_000),
        )
    assert [r.status_code for r in responses] == [200, 200, 200, 503, 200, 200]
    assert responses[3].json()["error"]["code"] == "backend_unavailable"
    # The group's insert and the poison's own; the neighbour's lock wait was run again.
    assert sorted(f.split("(")[0] for f in injector.fired) == [
        "DataError",
        "DataError",
        "OperationalError",
    ]
    states = {
        orjson.loads(decode_raw(e.body, e.body_encoding))["entry"][0]["changes"][0]["value"][
            "messages"
        ][0]["id"]: e.state
        for e in await rows(runtime.db, wa_webhook_events)
    }
    assert states == {f"wamid.TP{n}": "failed" if n == 3 else "processed" for n in range(6)}
    stored = {m.provider_id for m in await rows(runtime.db, crm_messages)}
    assert stored == {f"wamid.TP{n}" for n in range(6) if n != 3}


async def test_a_poison_delivery_is_not_stored_and_its_neighbours_are(
    client: httpx.AsyncClient,
) -> None:
    """The same when the raw event itself cannot be stored: the refused one is answered 503
    (Meta delivers it again) and nothing of it is kept; the others are stored once."""
    runtime = runtime_of(client)
    payloads = [delivery("TQ", n, "zehir" if n == 2 else "selam") for n in range(6)]

    def stores_poison(statement: str, parameters: Any) -> bool:
        return stores_events(statement, parameters) and "wamid.TQ2" in repr(parameters)

    with injecting(runtime.db) as injector:
        injector.add(stores_poison, PERMANENT, kind="DataError", times=1_000)
        responses = await asyncio.gather(*(post_webhook(client, body) for body in payloads))
    assert [r.status_code for r in responses] == [200, 200, 503, 200, 200, 200]
    events = await rows(runtime.db, wa_webhook_events)
    bodies = sorted(decode_raw(e.body, e.body_encoding) for e in events)
    assert bodies == sorted(orjson.dumps(body) for n, body in enumerate(payloads) if n != 2)
    assert await count(runtime.db, crm_messages) == 5
