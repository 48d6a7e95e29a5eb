"""Outbound messages: the rules checked before anything is queued, and the queued row + job.

A message is stored as ``queued`` and its send job enqueued in the SAME transaction (the queue's
transactional outbox), so an agent never sees a message that will not be sent, and a job never
refers to a message that was rolled back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.errors import BackendUnavailable
from core.whatsapp.texts import TEXT_MAX_CHARS, with_unsubscribe_line
from core.whatsapp.unsubscribe import make_token
from core.whatsapp.window import window_closes_at, window_open
from service.db.tables.crm import crm_contacts, crm_convos, crm_messages
from service.db.types import from_timestamp
from service.errors import ApiError
from service.whatsapp.consent import whatsapp_allowed
from service.whatsapp.facility import WhatsApp
from service.whatsapp.graph import template_message, text_message
from service.whatsapp.store import CHANNEL_WHATSAPP

SEND_QUEUE = "wa.send"
READ_QUEUE = "wa.read"
AUTOREPLY_QUEUE = "wa.autoreply"


@dataclass(frozen=True)
class Template:
    name: str
    language: str
    components: list[Any]


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


async def queue_outbound(
    whatsapp: WhatsApp,
    conn: AsyncConnection,
    convo_id: int,
    *,
    text: str | None = None,
    template: Template | None = None,
    marketing: bool = False,
    created_by: str,
    enforce_consent: bool = True,
    reply_to: str | None = None,
) -> int:
    """Checks the rules, stores the message as ``queued`` and enqueues its send job.

    ``enforce_consent=False`` is only for the acknowledgement of a STOP/START keyword, which
    answers the customer's own message and is the one message an opt-out still receives.
    """
    if (text is None) == (template is None):
        raise ApiError(422, "validation_failed", "give exactly one of text or template")
    queue = whatsapp.runtime.queue
    if queue is None:
        raise BackendUnavailable("queue", "the outbound queue is not configured")
    now_ts = whatsapp.runtime.clock.now()
    now = from_timestamp(now_ts)
    recipient = await load_recipient(conn, convo_id)
    if enforce_consent and not await whatsapp_allowed(conn, recipient.contact_id, now_ts):
        raise ApiError(
            403,
            "consent_required",
            "the contact has not granted (or no longer holds) WhatsApp consent",
            {"contact_id": recipient.contact_id, "purpose": "whatsapp"},
        )
    last_inbound = None
    if recipient.last_inbound_at is not None:
        last_inbound = recipient.last_inbound_at.timestamp()
    if text is not None and not window_open(last_inbound, now_ts):
        closed_at = window_closes_at(last_inbound)
        raise ApiError(
            409,
            "template_required",
            "free text is only allowed within 24 hours of the customer's last message; "
            "send an approved template instead",
            {
                "last_inbound_at": recipient.last_inbound_at.isoformat()
                if recipient.last_inbound_at
                else None,
                "window_closed_at": from_timestamp(closed_at).isoformat() if closed_at else None,
            },
        )
    if text is not None:
        body = text
        if marketing:
            body = with_unsubscribe_line(
                text, recipient.locale, unsubscribe_url(whatsapp, recipient.contact_id)
            )
            if len(body) > TEXT_MAX_CHARS:
                # Refused here: the Graph API would refuse it for good after it was queued.
                raise ApiError(
                    422,
                    "text_too_long",
                    "the text with its unsubscribe line is longer than WhatsApp allows",
                    {
                        "max_chars": TEXT_MAX_CHARS,
                        "max_text_chars": TEXT_MAX_CHARS - (len(body) - len(text)),
                    },
                )
        message = text_message(body, reply_to=reply_to)
        kind = "text"
    else:
        assert template is not None
        body = template.name
        message = template_message(template.name, template.language, template.components)
        kind = "template"
    result = await conn.execute(
        insert(crm_messages).values(
            convo_id=convo_id,
            direction="out",
            kind=kind,
            body=body,
            payload=message,
            reply_to=reply_to,
            status="queued",
            created_at=now,
            queued_at=now,
            created_by=created_by[:191],
            marketing=marketing,
        )
    )
    primary_key = result.inserted_primary_key
    assert primary_key is not None
    message_id = int(primary_key[0])
    await conn.execute(
        update(crm_convos).where(crm_convos.c.id == convo_id).values(last_activity_at=now)
    )
    await queue.enqueue(
        SEND_QUEUE,
        {"message_id": message_id, "consent_required": enforce_consent},
        key=f"wa-send-{message_id}",
        max_attempts=whatsapp.settings.whatsapp_send_max_attempts,
        conn=conn,
    )
    return message_id
