"""Small read helpers over the CRM tables for assertions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, func, insert, select

from service.db import Database
from service.db.tables.crm import crm_contacts, crm_convos, crm_messages
from service.db.types import from_timestamp


async def count(db: Database, table: Table) -> int:
    async with db.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)


async def rows(db: Database, table: Table, *where: Any) -> list[Any]:
    async with db.connect() as conn:
        query = select(table).where(*where).order_by(table.c.id)
        return list((await conn.execute(query)).all())


async def message_by_provider_id(db: Database, provider_id: str) -> Any:
    [row] = await rows(db, crm_messages, crm_messages.c.provider_id == provider_id)
    return row


async def seed_outbound(
    db: Database, provider_id: str | None, *, wa_id: str = "905321234567", at: float = 1.7e9
) -> int:
    """A contact, an open conversation and one sent outbound message (as the send job leaves it)."""
    now = from_timestamp(at)
    async with db.begin() as conn:
        contact = await conn.execute(
            insert(crm_contacts).values(
                wa_id=wa_id, name="Seed", locale="tr", created_at=now, updated_at=now
            )
        )
        contact_id = contact.inserted_primary_key[0]  # type: ignore[index]
        convo = await conn.execute(
            insert(crm_convos).values(
                contact_id=contact_id,
                channel="whatsapp",
                status="open",
                open_key=f"{contact_id}:whatsapp",
                unread=0,
                created_at=now,
                last_activity_at=now,
            )
        )
        convo_id = convo.inserted_primary_key[0]  # type: ignore[index]
        message = await conn.execute(
            insert(crm_messages).values(
                convo_id=convo_id,
                direction="out",
                kind="text",
                body="Merhaba",
                provider_id=provider_id,
                status="sent" if provider_id else "queued",
                created_at=now,
                queued_at=now,
                sent_at=now if provider_id else None,
                marketing=False,
            )
        )
        return int(message.inserted_primary_key[0])  # type: ignore[index]
