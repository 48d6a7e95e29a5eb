"""Chat history written behind the stream: contacts, conversations and counters per batch."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from service.db import Database
from service.db.tables.crm import crm_contacts, crm_convos, crm_messages
from service.support import history as history_module
from service.support import history_sql
from service.support.history import ChatRecord, Customer, HistoryWriter, write_batch


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


async def test_the_writer_looks_up_stored_ids_for_a_duplicate_and_after_a_failure(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resent client id (the room log had it) may be stored already; so may a batch whose
    commit's answer was lost: both are looked up, and nothing is counted twice."""
    ayse = Customer("cu_a", "Ayşe", "tr")
    writer = HistoryWriter(database, linger_seconds=0, retry_seconds=0.01)
    await writer.start()
    try:
        await writer.add(record(ayse, 1))
        await writer.flush()
        await writer.add(replace(record(ayse, 1), duplicate=True))
        await writer.flush()
        # The first attempt fails after its commit (as if the answer were lost).
        real = history_module.write_batch
        attempts: list[bool] = []

        async def lost_answer(*args: Any, **kwargs: Any) -> None:
            attempts.append(kwargs["check_stored"])
            await real(*args, **kwargs)
            if len(attempts) == 1:
                raise ConnectionError("answer lost")

        monkeypatch.setattr(history_module, "write_batch", lost_answer)
        await writer.add(record(ayse, 2))
        await writer.flush()
    finally:
        await writer.stop()
    assert attempts == [False, True]
    assert await unread_and_stored(database) == (2, 2)


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
