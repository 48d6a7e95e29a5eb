"""Emptying the CRM trash: contacts and notes deleted longer ago than the retention period
(``tracking_trash_retention_days``, one period for every trash) are removed for good.

- A contact goes with its conversations, their messages and its notes: each in bounded
  batches (messages can be many), then in one last transaction whatever arrived meanwhile (a
  live-chat message to the deleted contact) and the contact row, with one
  ``crm.contact.purge`` audit record. Its consent records stay: the consent log is the proof of
  what the person agreed to, kept on its own terms. An intent linked to one of its
  conversations keeps the conversation's id, which then names nothing (404), as after any
  deletion.
- A note deleted on its own goes with one ``crm.note.purge`` audit record.

Every batch first locks the contact's row and checks it is still deleted and past its period:
a customer who writes again revives a deleted contact (``service/whatsapp/store.py``), and the
purge then stops and leaves it alone. Children go before their parents (the foreign keys).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.audit import record_audit
from service.db import Database
from service.db.tables.crm import crm_contacts, crm_convos, crm_messages, crm_notes
from service.tracking.maintenance_retention import Budget
from service.tracking.trash_purge import DELETE_CHUNK, PURGE_ACTOR, Purged
from service.tracking.trash_window import purge_cutoff

#: Contacts chosen per round, rows per batch, notes per batch (each with its audit record).
CONTACTS = 100
BATCH = 2000
NOTE_BATCH = 200


async def purge_crm(
    db: Database,
    now: datetime,
    days: int,
    budget: Budget,
    purged: Purged,
    *,
    batch: int = BATCH,
    note_batch: int = NOTE_BATCH,
) -> None:
    """Purge the contacts, then the notes, deleted ``days`` or more before ``now``."""
    cutoff = purge_cutoff(now, days)
    c = crm_contacts.c
    after = 0
    while True:
        query = (
            select(c.id)
            .where(c.deleted_at.is_not(None), c.deleted_at <= cutoff, c.id > after)
            .order_by(c.id)
            .limit(CONTACTS)
        )
        async with db.connect() as conn:
            ids = [int(found) for found in (await conn.execute(query)).scalars()]
        for contact_id in ids:
            if budget.spent:
                purged.complete = False
                return
            if await purge_contact(db, contact_id, now, cutoff, budget, purged, batch=batch):
                purged.contacts += 1
            elif budget.spent:
                purged.complete = False
                return
        if len(ids) < CONTACTS:
            break
        after = ids[-1]
    await purge_notes(db, now, cutoff, budget, purged, batch=note_batch)


async def _purgeable_contact(conn: AsyncConnection, contact_id: int, cutoff: datetime) -> Any:
    """The contact's row while it is deleted and past its period (else None), taken first with
    a write that changes nothing: a row lock on MariaDB (a revival waits for it), the write lock
    on SQLite (whose driver would otherwise begin the transaction only at its first write)."""
    c = crm_contacts.c
    await conn.execute(
        update(crm_contacts).where(c.id == contact_id).values(updated_at=c.updated_at)
    )
    query = select(crm_contacts).where(
        c.id == contact_id, c.deleted_at.is_not(None), c.deleted_at <= cutoff
    )
    return (await conn.execute(query)).first()


def _parts(contact_id: int) -> list[tuple[Table, ColumnElement[bool]]]:
    """What goes with a contact, children first: (table, the condition of its rows)."""
    convos = select(crm_convos.c.id).where(crm_convos.c.contact_id == contact_id)
    return [
        (crm_messages, crm_messages.c.convo_id.in_(convos)),
        (crm_convos, crm_convos.c.contact_id == contact_id),
        (crm_notes, crm_notes.c.contact_id == contact_id),
    ]


async def purge_contact(
    db: Database,
    contact_id: int,
    now: datetime,
    cutoff: datetime,
    budget: Budget,
    purged: Purged,
    *,
    batch: int = BATCH,
) -> bool:
    """Remove a deleted contact with everything it holds; True when this call removed it
    (False: the budget ran out, or it is no longer a contact to purge)."""
    counts: dict[str, int] = {}
    for table, belongs in _parts(contact_id):
        chosen = select(table.c.id).where(belongs).limit(batch)
        while True:
            async with db.begin() as conn:
                if await _purgeable_contact(conn, contact_id, cutoff) is None:
                    return False
                ids = [int(found) for found in (await conn.execute(chosen)).scalars()]
                for at in range(0, len(ids), DELETE_CHUNK):
                    some = ids[at : at + DELETE_CHUNK]
                    await conn.execute(delete(table).where(table.c.id.in_(some)))
            counts[table.name] = counts.get(table.name, 0) + len(ids)
            if len(ids) < batch:
                break
            if budget.spent:
                return False
    async with db.begin() as conn:
        contact = await _purgeable_contact(conn, contact_id, cutoff)
        if contact is None:
            return False
        for table, belongs in _parts(contact_id):  # what arrived since its batches ran
            result = await conn.execute(delete(table).where(belongs))
            counts[table.name] = counts.get(table.name, 0) + int(result.rowcount or 0)
        gone = await conn.execute(delete(crm_contacts).where(crm_contacts.c.id == contact_id))
        if gone.rowcount != 1:
            return False
        await record_audit(
            conn,
            actor=PURGE_ACTOR,
            action="crm.contact.purge",
            subject=f"contact:{contact_id}",
            details={
                "deleted_at": contact.deleted_at.isoformat(),
                "rows": {name: count for name, count in counts.items() if count},
            },
            ts=now,
        )
    return True


async def purge_notes(
    db: Database,
    now: datetime,
    cutoff: datetime,
    budget: Budget,
    purged: Purged,
    *,
    batch: int = NOTE_BATCH,
) -> bool:
    """Notes deleted on their own at or before ``cutoff``; True when none is left. Each note is
    deleted by itself and audited only when that delete removed it: a concurrent purge that chose
    the same notes removes (and audits) each once."""
    n = crm_notes.c
    expired = (n.deleted_at.is_not(None), n.deleted_at <= cutoff)
    while True:
        async with db.begin() as conn:
            query = (
                select(n.id, n.contact_id, n.deleted_at)
                .where(*expired)
                .order_by(n.deleted_at, n.id)
                .limit(batch)
            )
            rows = (await conn.execute(query)).all()
            removed = 0
            for row in rows:
                gone = await conn.execute(delete(crm_notes).where(n.id == row.id, *expired))
                if gone.rowcount != 1:
                    continue
                removed += 1
                await record_audit(
                    conn,
                    actor=PURGE_ACTOR,
                    action="crm.note.purge",
                    subject=f"contact:{row.contact_id}",
                    details={"note": int(row.id), "deleted_at": row.deleted_at.isoformat()},
                    ts=now,
                )
        purged.notes += removed
        if len(rows) < batch:
            return True
        if budget.spent:
            purged.complete = False
            return False
