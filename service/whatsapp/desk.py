"""The CRM desk: each agent action of the admin API as one unit of work.

``crm`` holds the queries, each on the caller's connection; the desk decides where a
transaction begins and ends, what is audited with it and what is queued in it, so every route
of ``service/routes/crm.py`` is one call here. Provided on the runtime as ``CrmDesk``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.audit import record_audit
from service.cache.aside import CacheAside
from service.db.types import from_timestamp
from service.errors import ApiError
from service.runtime import Runtime
from service.whatsapp import crm
from service.whatsapp.consent import whatsapp_allowed
from service.whatsapp.facility import sending_configured
from service.whatsapp.outbound import queue_read_receipt

#: Contact fields an agent may set but never clear.
UNCLEARABLE = ("name", "locale")


@dataclass
class CrmDesk:
    runtime: Runtime

    async def conversations(
        self, flt: crm.ConvoFilter, *, limit: int, cursor: str | None
    ) -> dict[str, Any]:
        runtime = self.runtime
        return await crm.cached_convos(
            runtime.facility(CacheAside),
            runtime.db,
            flt,
            limit=limit,
            cursor=cursor,
            now=runtime.clock.now(),
            ttl=runtime.settings.cache_crm_convos_ttl_seconds,
        )

    async def conversation(self, convo_id: int) -> dict[str, Any]:
        """The conversation with its contact card: consent and notes included."""
        now = self.runtime.clock.now()
        async with self.runtime.db.connect() as conn:
            row = await crm.get_convo(conn, convo_id)
            contact = await crm.get_contact(conn, row.contact_id)
            card = crm.contact_card(contact)
            card["whatsapp_consent"] = await whatsapp_allowed(conn, contact.id, now)
            card["notes"] = await crm.list_notes(conn, contact.id)
        return {"convo": crm.convo_view(row, now), "contact": card}

    async def messages(
        self, convo_id: int, *, before: int | None, after: int | None, limit: int
    ) -> dict[str, Any]:
        async with self.runtime.db.connect() as conn:
            await crm.get_convo(conn, convo_id)
            return await crm.message_page(conn, convo_id, before=before, after=after, limit=limit)

    async def set_status(self, actor: str, convo_id: int, status: str) -> dict[str, Any]:
        """Closes or reopens the conversation, audited."""
        now = self.runtime.clock.now()
        async with self.runtime.db.begin() as conn:
            await crm.set_convo_status(conn, convo_id, status)
            await record_audit(
                conn,
                actor=actor,
                action=f"crm.convo.{'reopen' if status == 'open' else 'close'}",
                subject=f"convo:{convo_id}",
                ts=from_timestamp(now),
            )
            row = await crm.get_convo(conn, convo_id)
        await crm.convo_lists_changed(self.runtime.backends)
        return crm.convo_view(row, now)

    async def mark_read(self, convo_id: int) -> dict[str, Any]:
        """Marks the inbound messages read and queues the WhatsApp read receipt with it, when
        one can be sent; the answer says why not otherwise (``receipt_skipped``)."""
        now = from_timestamp(self.runtime.clock.now())
        queue = self.runtime.queue
        async with self.runtime.db.begin() as conn:
            convo = await crm.get_convo(conn, convo_id)
            latest = await crm.mark_read(conn, convo_id, now)
            skipped: str | None = None
            if convo.channel != "whatsapp":
                skipped = "not_whatsapp"
            elif latest is None:
                skipped = "no_inbound_message"
            elif not sending_configured(self.runtime.settings):
                skipped = "whatsapp_not_configured"
            elif queue is None:
                skipped = "no_queue"
            else:
                await queue_read_receipt(queue, conn, latest)
        await crm.convo_lists_changed(self.runtime.backends)
        return {
            "convo_id": convo_id,
            "unread": 0,
            "receipt_queued": skipped is None,
            "receipt_skipped": skipped,
        }

    async def search_contacts(self, text: str, limit: int) -> dict[str, Any]:
        async with self.runtime.db.connect() as conn:
            return {"items": await crm.search_contacts(conn, text, limit)}

    async def update_contact(
        self, actor: str, contact_id: int, changes: dict[str, Any]
    ) -> dict[str, Any]:
        """Sets the given fields (``None`` clears one), audited with the names of the fields."""
        if any(changes.get(key, "") is None for key in UNCLEARABLE):
            raise ApiError(422, "validation_failed", "name and locale cannot be cleared")
        now = from_timestamp(self.runtime.clock.now())
        async with self.runtime.db.begin() as conn:
            row = await crm.update_contact(conn, contact_id, changes, now)
            await record_audit(
                conn,
                actor=actor,
                action="crm.contact.update",
                subject=f"contact:{contact_id}",
                details={"fields": sorted(changes)},
                ts=now,
            )
        # A list shows the contact's name.
        await crm.convo_lists_changed(self.runtime.backends)
        return crm.contact_card(row)

    async def delete_contact(self, actor: str, contact_id: int) -> None:
        now = from_timestamp(self.runtime.clock.now())
        async with self.runtime.db.begin() as conn:
            await crm.delete_contact(conn, contact_id, now)
            await record_audit(
                conn,
                actor=actor,
                action="crm.contact.delete",
                subject=f"contact:{contact_id}",
                ts=now,
            )
        await crm.convo_lists_changed(self.runtime.backends)

    async def add_note(self, actor: str, contact_id: int, body: str) -> dict[str, Any]:
        now = from_timestamp(self.runtime.clock.now())
        async with self.runtime.db.begin() as conn:
            return await crm.add_note(conn, contact_id, body, actor, now)

    async def notes(self, contact_id: int) -> dict[str, Any]:
        async with self.runtime.db.connect() as conn:
            return {"items": await crm.list_notes(conn, contact_id)}

    async def delete_note(self, note_id: int) -> None:
        now = from_timestamp(self.runtime.clock.now())
        async with self.runtime.db.begin() as conn:
            await crm.delete_note(conn, note_id, now)
