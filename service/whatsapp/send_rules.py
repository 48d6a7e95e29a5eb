"""What must hold before an outbound message is queued, one check each, in the order
``outbound.queue_outbound`` runs them: the conversation has a WhatsApp recipient, the contact
holds consent, free text is inside the service window, a marketing text has room for its
unsubscribe line."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.whatsapp.texts import TEXT_MAX_CHARS, with_unsubscribe_line
from core.whatsapp.unsubscribe import make_token
from core.whatsapp.window import window_closes_at, window_open
from service.db.tables.crm import crm_contacts, crm_convos
from service.db.types import from_timestamp
from service.errors import ApiError
from service.whatsapp.consent import whatsapp_allowed
from service.whatsapp.facility import WhatsApp
from service.whatsapp.store import CHANNEL_WHATSAPP

#: The rule a marketing text is refused under (422 text_too_long); its refusal quotes it.
MARKETING_ROOM = "a marketing text leaves room for its unsubscribe line"


@dataclass(frozen=True)
class Recipient:
    convo_id: int
    contact_id: int
    wa_id: str
    locale: str
    last_inbound_at: datetime | None


async def load_recipient(conn: AsyncConnection, convo_id: int) -> Recipient:
    # WhatsApp's service window belongs to the customer, not to one of our conversations: a
    # message in a newer conversation opens it for an older, reopened one as well.
    other = crm_convos.alias("other")
    last_inbound = (
        select(func.max(other.c.last_inbound_at))
        .where(other.c.contact_id == crm_convos.c.contact_id, other.c.channel == CHANNEL_WHATSAPP)
        .scalar_subquery()
    )
    row = (
        await conn.execute(
            select(
                crm_convos.c.id,
                crm_convos.c.channel,
                last_inbound.label("last_inbound_at"),
                crm_contacts.c.id.label("contact_id"),
                crm_contacts.c.wa_id,
                crm_contacts.c.locale,
                crm_contacts.c.deleted_at,
            )
            .select_from(
                crm_convos.join(crm_contacts, crm_convos.c.contact_id == crm_contacts.c.id)
            )
            .where(crm_convos.c.id == convo_id)
        )
    ).first()
    if row is None or row.deleted_at is not None:
        raise ApiError(404, "not_found", "no such conversation", {"convo_id": convo_id})
    if row.channel != CHANNEL_WHATSAPP or not row.wa_id:
        raise ApiError(
            409,
            "not_whatsapp",
            "this conversation has no WhatsApp recipient",
            {"convo_id": convo_id},
        )
    return Recipient(row.id, row.contact_id, row.wa_id, row.locale, row.last_inbound_at)


def unsubscribe_url(whatsapp: WhatsApp, contact_id: int) -> str:
    origin = whatsapp.settings.public_origin.rstrip("/")
    return f"{origin}/u/{make_token(whatsapp.unsubscribe_secret, contact_id)}"


async def require_consent(conn: AsyncConnection, recipient: Recipient, now: float) -> None:
    if not await whatsapp_allowed(conn, recipient.contact_id, now):
        raise ApiError(
            403,
            "consent_required",
            "the contact has not granted (or no longer holds) WhatsApp consent",
            {"contact_id": recipient.contact_id, "purpose": "whatsapp"},
        )


def require_open_window(recipient: Recipient, now: float) -> None:
    """Free text only within 24 hours of the customer's last message (templates any time)."""
    last_inbound = recipient.last_inbound_at
    last_ts = None if last_inbound is None else last_inbound.timestamp()
    if window_open(last_ts, now):
        return
    closed_at = window_closes_at(last_ts)
    raise ApiError(
        409,
        "template_required",
        "free text is only allowed within 24 hours of the customer's last message; "
        "send an approved template instead",
        {
            "last_inbound_at": last_inbound.isoformat() if last_inbound else None,
            "window_closed_at": from_timestamp(closed_at).isoformat() if closed_at else None,
        },
    )


def marketing_text(whatsapp: WhatsApp, recipient: Recipient, text: str) -> str:
    """The text with the unsubscribe line in the contact's language."""
    body = with_unsubscribe_line(
        text, recipient.locale, unsubscribe_url(whatsapp, recipient.contact_id)
    )
    if len(body) > TEXT_MAX_CHARS:
        # Refused here: the Graph API would refuse it for good after it was queued.
        raise ApiError(
            422,
            "text_too_long",
            f"the text with its unsubscribe line is longer than WhatsApp allows: {MARKETING_ROOM}",
            {
                "max_chars": TEXT_MAX_CHARS,
                "max_text_chars": TEXT_MAX_CHARS - (len(body) - len(text)),
            },
        )
    return body
