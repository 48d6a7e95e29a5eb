"""Chat history written behind the stream: contacts, conversations and counters per batch."""

from __future__ import annotations

from sqlalchemy import select

from service.db import Database
from service.db.tables.crm import crm_contacts, crm_convos, crm_messages
from service.support.history import ChatRecord, Customer, write_batch


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
    async with database.connect() as conn:
        [convo] = list(await conn.execute(select(crm_convos)))
        count = len(list(await conn.execute(select(crm_messages.c.id))))
    assert (convo.unread, count) == (2, 2)


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
