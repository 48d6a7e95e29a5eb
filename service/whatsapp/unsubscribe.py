"""The ``/u/{token}`` unsubscribe link: withdraw the contact's WhatsApp consent."""

from __future__ import annotations

from sqlalchemy import select

from core.i18n import Locale, resolve_locale
from service.audit import record_audit
from service.db.tables.crm import crm_contacts
from service.db.types import from_timestamp
from service.runtime import Runtime
from service.whatsapp.consent import opt_out, subject_of


async def unsubscribe_contact(runtime: Runtime, contact_id: int) -> Locale | None:
    """The contact's language after withdrawing, or None for an unknown contact."""
    now = runtime.clock.now()
    async with runtime.db.begin() as conn:
        locale = await conn.scalar(
            select(crm_contacts.c.locale).where(crm_contacts.c.id == contact_id)
        )
        if locale is None:
            return None
        changed = await opt_out(conn, contact_id, now, source="unsubscribe_link")
        if changed:
            await record_audit(
                conn,
                actor=subject_of(contact_id),
                action="whatsapp.unsubscribe",
                subject=subject_of(contact_id),
                details={"source": "unsubscribe_link"},
                ts=from_timestamp(now),
            )
    return resolve_locale(str(locale))
