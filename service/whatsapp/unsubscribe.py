"""The ``/u/{token}`` unsubscribe link: withdraw the contact's WhatsApp consent."""

from __future__ import annotations

from sqlalchemy import select

from core.i18n import Locale, resolve_locale
from core.whatsapp.unsubscribe import read_token
from service.audit import record_audit
from service.db.tables.crm import crm_contacts
from service.db.types import from_timestamp
from service.whatsapp.consent import opt_out, subject_of
from service.whatsapp.facility import WhatsApp

SOURCE = "unsubscribe_link"


async def unsubscribe_by_token(whatsapp: WhatsApp, token: str) -> Locale | None:
    """The contact's language after withdrawing, or None for a forged link or unknown contact."""
    contact_id = read_token(whatsapp.unsubscribe_secret, token)
    if contact_id is None:
        return None
    return await unsubscribe_contact(whatsapp, contact_id)


async def unsubscribe_contact(whatsapp: WhatsApp, contact_id: int) -> Locale | None:
    """The contact's language after withdrawing, or None for an unknown contact."""
    runtime = whatsapp.runtime
    now = runtime.clock.now()
    async with runtime.db.begin() as conn:
        locale = await conn.scalar(
            select(crm_contacts.c.locale).where(crm_contacts.c.id == contact_id)
        )
        if locale is None:
            return None
        changed = await opt_out(conn, contact_id, now, source=SOURCE, policy=whatsapp.consent)
        if changed:
            await record_audit(
                conn,
                actor=subject_of(contact_id),
                action="whatsapp.unsubscribe",
                subject=subject_of(contact_id),
                details={"source": SOURCE},
                ts=from_timestamp(now),
            )
    return resolve_locale(str(locale))
