"""Chat history written behind the stream: contacts, conversations and counters per batch."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from service.backends.memory import MemoryKeyspace
from service.db import Database
from service.db.tables.crm import crm_contacts, crm_convos, crm_messages
from service.support import history as history_module
from service.support import history_sql
from service.support.history import ChatRecord, Customer, HistoryWriter, write_batch
from service.support.historyfeed_memory import MemoryHistoryFeed, add_record


async def unread_and_stored(database: Database) -> tuple[int, int]:
    """The only conversation's unread count, and how many messages are stored."""
    async with database.connect() as conn:
        [convo] = list(await conn.execute(select(crm_convos)))
        count = len(list(await conn.execute(select(crm_messages.c.id))))
    return int(convo.unread), count


def record(customer: Customer, n: int, *, role: str = "customer") -> ChatRecord:
    sender = customer.id if role == "customer" else "ad_1"
    return ChatRecord(customer, sender, role, f"m{n}", f"text {n}", 1_796_000_000.0 + n)


async def test_a_batch_of_several_chats_counts_each_conversation(database: Database) -> None:
    ayse = Customer("cu_a", "Ayşe", "tr")
    hans = Customer("cu_h", "Hans", "de")
    await write_batch(
        database,
        [record(ayse, 1), record(hans, 2), record(ayse, 3), record(hans, 4, role="admin")],
    )
    # A second batch, with a message already stored (its client id again): stored once.
    await write_batch(database, [record(ayse, 5), record(ayse, 1), record(hans, 6, role="admin")])
    async with database.connect() as conn:
        contacts = {
            r.web_id: (r.id, r.name, r.locale) for r in await conn.execute(select(crm_contacts))
        }
        convos = {r.contact_id: r for r in await conn.execute(select(crm_convos))}
        bodies = [
            r.body for r in await conn.execute(select(crm_messages).order_by(crm_messages.c.id))
        ]
    assert {k: v[1:] for k, v in contacts.items()} == {
        "cu_a": ("Ayşe", "tr"),
        "cu_h": ("Hans", "de"),
    }
    a, h = convos[contacts["cu_a"][0]], convos[contacts["cu_h"][0]]
    assert (a.channel, h.channel) == ("web", "web")
    # Ayşe wrote 1, 3 and 5; 1 again is neither stored nor counted twice.
    assert sorted(bodies) == sorted(["text 1", "text 2", "text 3", "text 4", "text 5", "text 6"])
    assert a.unread == 3 and a.last_inbound_at is not None
    assert h.unread == 1


async def test_a_retried_batch_changes_nothing(database: Database) -> None:
    ayse = Customer("cu_a", "Ayşe", "tr")
    batch = [record(ayse, 1), record(ayse, 2)]
    await write_batch(database, batch)
    await write_batch(database, batch)
    assert await unread_and_stored(database) == (2, 2)


async def test_the_writer_remembers_open_conversations_until_one_is_closed(
    database: Database,
) -> None:
    """Batches reuse the conversation an earlier batch found (checked to be still open); a
    chat whose conversation an agent closed meanwhile goes to a new open one."""
    ayse = Customer("cu_a", "Ayşe", "tr")
    known: dict[str, int] = {}
    await write_batch(database, [record(ayse, 1)], known)
    first = known["cu_a"]
    await write_batch(database, [record(ayse, 2)], known)
    assert known == {"cu_a": first}
    async with database.begin() as conn:
        await conn.execute(
            crm_convos.update()
            .where(crm_convos.c.id == first)
            .values(status="closed", open_key=None)
        )
    await write_batch(database, [record(ayse, 3)], known)
    second = known["cu_a"]
    assert second != first
    async with database.connect() as conn:
        where = {
            r.body: r.convo_id
            for r in await conn.execute(select(crm_messages.c.body, crm_messages.c.convo_id))
        }
        convos = {r.id: r for r in await conn.execute(select(crm_convos))}
    assert where == {"text 1": first, "text 2": first, "text 3": second}
    assert (convos[first].unread, convos[second].unread) == (2, 1)
    assert convos[second].status == "open" and convos[second].contact_id == convos[first].contact_id


#: Texts that a statement written as SQL text must keep exactly: quotes, backslashes, a
#: parameter marker, a NUL, non-ASCII letters and an emoji.
AWKWARD = [
    'it\'s "quoted"',
    "back\\slash \\' and \\\\",
    "100% sure; %s %(x)s",
    "nul\x00byte",
    "Ayşe, Müller, 😀",
    "'); DROP TABLE crm_messages; --",
]


async def test_awkward_texts_and_every_column_are_stored_as_given(database: Database) -> None:
    customer = Customer("cu_o'neil", "O'Neil", "en")
    records = [
        ChatRecord(customer, customer.id, "customer", f"c{n}", text, 1_796_000_000.123456 + n)
        for n, text in enumerate(AWKWARD)
    ]
    records.append(
        ChatRecord(customer, "ad_o'hara\\", "admin", "a1", "reply", 1_796_000_100.000001)
    )
    await write_batch(database, records, {}, check_stored=False)
    async with database.connect() as conn:
        rows = list(await conn.execute(select(crm_messages).order_by(crm_messages.c.created_at)))
        [convo] = list(await conn.execute(select(crm_convos)))
    assert [r.body for r in rows] == [*AWKWARD, "reply"]
    assert [r.provider_id for r in rows] == [
        *(f"web:cu_o'neil:c{n}" for n in range(len(AWKWARD))),
        "web:ad_o'hara\\:a1",
    ]
    assert [(r.direction, r.kind, r.status, r.created_by, r.marketing) for r in rows] == [
        *[("in", "text", "received", None, False)] * len(AWKWARD),
        ("out", "text", "delivered", "ad_o'hara\\", False),
    ]
    # Microseconds kept, stored as UTC.
    assert [r.created_at.timestamp() for r in rows] == [r.at for r in records]
    assert (convo.unread, convo.channel) == (len(AWKWARD), "web")
    assert convo.last_inbound_at is not None and convo.last_activity_at is not None


async def test_a_first_attempt_skips_the_lookup_but_stores_a_repeat_once(
    database: Database,
) -> None:
    ayse = Customer("cu_a", "Ayşe", "tr")
    hans = Customer("cu_h", "Hans", "de")
    known: dict[str, int] = {}
    await write_batch(database, [record(ayse, 1), record(hans, 2)], known, check_stored=False)
    # Same record twice in one batch; a quiet conversation (admin only) is touched.
    await write_batch(
        database,
        [record(ayse, 3), record(ayse, 3), record(hans, 4, role="admin")],
        known,
        check_stored=False,
    )
    async with database.connect() as conn:
        convos = {r.id: r for r in await conn.execute(select(crm_convos))}
        bodies = sorted(r.body for r in await conn.execute(select(crm_messages.c.body)))
    assert bodies == ["text 1", "text 2", "text 3", "text 4"]
    assert (convos[known["cu_a"]].unread, convos[known["cu_h"]].unread) == (2, 1)
    assert convos[known["cu_h"]].last_activity_at >= convos[known["cu_h"]].last_inbound_at


async def test_conversation_activity_is_whole_seconds_and_never_goes_back(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of one second leave the activity time as the first of them set it (the
    database's indexes on it are not rewritten), and no batch moves it back."""
    ayse = Customer("cu_a", "Ayşe", "tr")
    clock = [datetime(2026, 12, 6, 10, 0, 5, 300_000, tzinfo=UTC)]
    monkeypatch.setattr(history_module, "utcnow", lambda: clock[0])

    async def batch(n: int, at: datetime) -> tuple[int, datetime, datetime]:
        clock[0] = at
        await write_batch(database, [record(ayse, n)])
        async with database.connect() as conn:
            [convo] = list(await conn.execute(select(crm_convos)))
        return int(convo.unread), convo.last_inbound_at, convo.last_activity_at

    second = datetime(2026, 12, 6, 10, 0, 5, tzinfo=UTC)
    # The first batch makes the conversation (its activity the exact time), then counts.
    made = clock[0]
    assert await batch(1, made) == (1, second, made)
    # The same second again: nothing but the count changes.
    assert await batch(2, second.replace(microsecond=800_000)) == (2, second, made)
    later = datetime(2026, 12, 6, 10, 0, 7, tzinfo=UTC)
    assert await batch(3, later.replace(microsecond=100_000)) == (3, later, later)
    # Something else moved the activity on (an agent's reply): a batch leaves it there.
    ahead = datetime(2026, 12, 6, 10, 5, 0, 250_000, tzinfo=UTC)
    async with database.begin() as conn:
        await conn.execute(crm_convos.update().values(last_activity_at=ahead))
    after = datetime(2026, 12, 6, 10, 0, 9, tzinfo=UTC)
    assert await batch(4, after.replace(microsecond=1)) == (4, after, ahead)


def memory_feed(claim_idle: float = 60.0) -> tuple[MemoryKeyspace, MemoryHistoryFeed]:
    space = MemoryKeyspace("history-test")
    return space, MemoryHistoryFeed(space, claim_idle=claim_idle)


async def test_the_writer_stores_the_feeds_records_and_marks_them_done(
    database: Database,
) -> None:
    ayse, hans = Customer("cu_a", "Ayşe", "tr"), Customer("cu_h", "Hans", "de")
    space, feed = memory_feed()
    written: list[int] = []

    async def lists_changed() -> None:
        written.append(1)

    writer = HistoryWriter(database, feed, linger_seconds=0.01, on_written=lists_changed)
    await writer.start()
    try:
        for n in range(1, 4):
            add_record(space, record(ayse, n).encode())
        add_record(space, record(hans, 4, role="admin").encode())
        await writer.flush()
        assert await feed.backlog() == 0
        assert writer.written == 4 and written
    finally:
        await writer.stop()
    async with database.connect() as conn:
        bodies = sorted(r.body for r in await conn.execute(select(crm_messages.c.body)))
    assert bodies == ["text 1", "text 2", "text 3", "text 4"]


async def test_a_full_batch_ends_the_writers_linger(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The linger is for a batch that is not full: once one is, it is written at once, as one
    transaction (waited out whole, at full load the writer caught up in bursts and then idled
    while batches piled up)."""
    ayse = Customer("cu_a", "Ayşe", "tr")
    monkeypatch.setattr(history_module, "BATCH", 4)
    monkeypatch.setattr(history_module, "LINGER_STEPS", 600)  # a read every 0.1 s
    space, feed = memory_feed()
    batches: list[int] = []
    real = history_module.write_batch

    async def counted(db: Database, records: list[ChatRecord], *args: Any, **kw: Any) -> None:
        batches.append(len(records))
        await real(db, records, *args, **kw)

    monkeypatch.setattr(history_module, "write_batch", counted)
    writer = HistoryWriter(database, feed, linger_seconds=60)
    await writer.start()
    try:
        add_record(space, record(ayse, 1).encode())
        async with asyncio.timeout(20):
            while not writer._batch:  # taken: the writer lingers for more
                await asyncio.sleep(0.01)
        for n in range(2, 5):
            add_record(space, record(ayse, n).encode())
        # Far within the linger's minute (its reads come every 0.1 s).
        async with asyncio.timeout(20):
            await writer.flush()
    finally:
        await writer.stop()
    assert batches == [4]
    assert await unread_and_stored(database) == (4, 4)


async def test_the_writer_looks_up_stored_ids_after_a_failure_and_for_retried_records(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch whose commit's answer was lost may be stored already; so may a record taken
    over from a writer that died: both are looked up, and nothing is counted twice."""
    ayse = Customer("cu_a", "Ayşe", "tr")
    space, feed = memory_feed(claim_idle=0.05)
    real = history_module.write_batch
    attempts: list[bool] = []

    async def lost_answer(*args: Any, **kwargs: Any) -> None:
        attempts.append(kwargs["check_stored"])
        await real(*args, **kwargs)
        if len(attempts) == 1:
            raise ConnectionError("answer lost")

    monkeypatch.setattr(history_module, "write_batch", lost_answer)
    writer = HistoryWriter(database, feed, linger_seconds=0, retry_seconds=0.01)
    await writer.start()
    try:
        add_record(space, record(ayse, 1).encode())
        await writer.flush()
        await writer.stop()
        # A writer that died after storing record 2, before marking it done.
        add_record(space, record(ayse, 2).encode())
        dead = MemoryHistoryFeed(space, claim_idle=0.05)
        [taken] = await dead.take(10, block=0)
        await real(database, [record(ayse, 2)], {}, check_stored=False)
        assert taken.record == record(ayse, 2).encode()
        writer = HistoryWriter(database, feed, linger_seconds=0, retry_seconds=0.01)
        await writer.start()
        await asyncio.sleep(0.1)
        await writer.flush()
    finally:
        await writer.stop()
    assert attempts == [False, True, True]
    assert await unread_and_stored(database) == (2, 2)


@pytest.mark.parametrize("holding", [True, False])
async def test_a_stopping_writer_writes_what_the_feed_holds(
    database: Database, holding: bool
) -> None:
    """Embedded: nothing else would write it once the process is gone. ``holding``: the writer
    took the first record and lingers for more; else it is stopped before it took any."""
    ayse = Customer("cu_a", "Ayşe", "tr")
    space, feed = memory_feed()
    writer = HistoryWriter(database, feed, linger_seconds=10)
    await writer.start()
    await asyncio.sleep(0)  # the writer waits on the feed
    for n in range(1, 6):
        add_record(space, record(ayse, n).encode())
    if holding:
        await asyncio.sleep(0.05)
    await writer.stop()
    assert await feed.backlog() == 0
    assert await unread_and_stored(database) == (5, 5)


async def test_an_unreadable_record_is_dropped_and_the_rest_written(database: Database) -> None:
    ayse = Customer("cu_a", "Ayşe", "tr")
    space, feed = memory_feed()
    writer = HistoryWriter(database, feed, linger_seconds=0)
    await writer.start()
    try:
        add_record(space, b"not json")
        add_record(space, b'{"c": ["x", "y"]}')
        add_record(space, record(ayse, 1).encode())
        await writer.flush()
    finally:
        await writer.stop()
    assert await unread_and_stored(database) == (1, 1)


@given(
    text=st.text(max_size=50),
    name=st.text(max_size=20),
    at=st.floats(min_value=0, max_value=4e9, allow_nan=False),
)
def test_a_record_survives_the_feed(text: str, name: str, at: float) -> None:
    made = ChatRecord(Customer("cu_x", name, "de"), "ad_1", "admin", "k1", text, at)
    assert ChatRecord.decode(made.encode()) == made


_GOOD = {"c": ["cu_x", "Ayşe", "tr"], "s": "cu_x", "r": "customer", "k": "k1", "t": "hi", "a": 1.5}


@pytest.mark.parametrize(
    "field, value",
    [
        ("c", ["cu_x", 7, "tr"]),
        ("c", ["cu_x", "Ayşe"]),
        ("c", None),
        ("s", None),
        ("r", 1),
        ("k", ["k1"]),
        ("t", {"t": "hi"}),
        ("a", "1.5"),
        ("a", True),
        ("a", None),
    ],
)
def test_a_record_with_a_field_of_the_wrong_shape_is_refused(field: str, value: object) -> None:
    assert ChatRecord.decode(orjson.dumps(_GOOD)).at == 1.5
    with pytest.raises((ValueError, KeyError, TypeError)):
        ChatRecord.decode(orjson.dumps({**_GOOD, field: value}))


async def test_a_batch_of_long_texts_is_stored_whole_in_several_statements(
    database: Database,
) -> None:
    ayse = Customer("cu_a", "Ayşe", "tr")
    texts = [f"{n:04d}" + "ş" * 3996 for n in range(300)]  # about 2.4 MB of UTF-8
    records = [
        ChatRecord(ayse, ayse.id, "customer", f"c{n}", text, 1_796_000_000.0 + n)
        for n, text in enumerate(texts)
    ]
    await write_batch(database, records, {}, check_stored=False)
    async with database.connect() as conn:
        stored = [r.body for r in await conn.execute(select(crm_messages.c.body))]
        [convo] = list(await conn.execute(select(crm_convos)))
    assert sorted(stored) == texts
    assert convo.unread == 300


class _Plain:
    def escape_string(self, s: str) -> str:
        return s.replace("'", "''")


def test_inserts_are_split_by_length_and_keep_every_row_once() -> None:
    ayse = Customer("cu_a", "Ayşe", "tr")
    rows = [
        (7, ChatRecord(ayse, ayse.id, "customer", f"c{n}", "x" * 50, 1_796_000_000.0), f"p{n}")
        for n in range(10)
    ]
    statements = history_sql.insert_messages(_Plain(), rows, max_length=250)
    assert len(statements) == 5
    assert all(s.startswith("INSERT INTO crm_messages") for s in statements)
    assert [p for s in statements for p in re.findall(r"'(p\d+)'", s)] == [
        f"p{n}" for n in range(10)
    ]
    # One row longer than the limit still goes, alone.
    [alone] = history_sql.insert_messages(_Plain(), rows[:1], max_length=10)
    assert "'p0'" in alone


@settings(max_examples=2000, deadline=None)
@given(
    st.one_of(
        st.floats(min_value=-2e9, max_value=4e9, allow_nan=False, allow_infinity=False),
        # Half a microsecond off a whole one: the rounding's ties.
        st.builds(
            lambda s, u: s + (u + 0.5) / 1_000_000,
            st.integers(0, 4_000_000_000),
            st.integers(0, 999_999),
        ),
    )
)
def test_a_rows_time_literal_is_the_datetime_one(at: float) -> None:
    expected = datetime.fromtimestamp(at, UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    assert history_sql._time(at) == f"'{expected}'"
