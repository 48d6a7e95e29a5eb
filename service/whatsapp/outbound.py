"""Outbound messages: the queued row and its send job, and the checks before them.

A message is stored as ``queued`` and its send job enqueued in the SAME transaction (the queue's
transactional outbox), so an agent never sees a message that will not be sent, and a job never
refers to a message that was rolled back. The rules run in a fixed order, each its own step:
exactly one kind, a queue, then the recipient's (``send_rules``): it exists on WhatsApp,
consent, the service window, a marketing text's room for its unsubscribe line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.errors import BackendUnavailable
from service.db.tables.crm import crm_convos, crm_messages
from service.db.types import from_timestamp
from service.errors import ApiError
from service.queue.base import JobQueue
from service.whatsapp import crm, live
from service.whatsapp.facility import WhatsApp
from service.whatsapp.graph import template_message, text_message
from service.whatsapp.send_rules import (
    load_recipient,
    marketing_text,
    require_consent,
    require_open_window,
)

SEND_QUEUE = "wa.send"
READ_QUEUE = "wa.read"
AUTOREPLY_QUEUE = "wa.autoreply"


@dataclass(frozen=True)
class Template:
    name: str
    language: str
    components: list[Any]


@dataclass(frozen=True)
class Draft:
    """A message ready to be stored: its kind, the body kept in the CRM, the Graph payload."""

    kind: Literal["text", "template"]
    body: str
    payload: dict[str, Any]


def require_one_kind(text: str | None, template: Template | None) -> None:
    if (text is None) == (template is None):
        raise ApiError(422, "validation_failed", "give exactly one of text or template")


def require_queue(whatsapp: WhatsApp) -> JobQueue:
    queue = whatsapp.runtime.queue
    if queue is None:
        raise BackendUnavailable("queue", "the outbound queue is not configured")
    return queue


def require_sending(whatsapp: WhatsApp) -> None:
    """Refuses (409) a message that could only fail at the Graph API: nothing is stored or
    queued for a provider this deployment has not configured."""
    if whatsapp.sending_configured:
        return
    missing = [
        f"KERVAN_WHATSAPP_{name.upper()}"
        for name in ("access_token", "phone_number_id")
        if not getattr(whatsapp.settings, f"whatsapp_{name}")
    ]
    raise ApiError(
        409,
        "whatsapp_not_configured",
        "WhatsApp sending is not configured: nothing was stored or queued",
        {"missing": missing},
    )


def text_draft(text: str, *, reply_to: str | None) -> Draft:
    return Draft("text", text, text_message(text, reply_to=reply_to))


def template_draft(template: Template) -> Draft:
    payload = template_message(template.name, template.language, template.components)
    return Draft("template", template.name, payload)


async def store_queued(
    conn: AsyncConnection,
    convo_id: int,
    draft: Draft,
    *,
    marketing: bool,
    reply_to: str | None,
    created_by: str,
    now: datetime,
) -> int:
    """The message row as ``queued``; the conversation counts it as activity."""
    result = await conn.execute(
        insert(crm_messages).values(
            convo_id=convo_id,
            direction="out",
            kind=draft.kind,
            body=draft.body,
            payload=draft.payload,
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
    await conn.execute(
        update(crm_convos).where(crm_convos.c.id == convo_id).values(last_activity_at=now)
    )
    return int(primary_key[0])


async def enqueue_send(
    whatsapp: WhatsApp,
    queue: JobQueue,
    conn: AsyncConnection,
    message_id: int,
    *,
    consent_required: bool,
) -> None:
    await queue.enqueue(
        SEND_QUEUE,
        {"message_id": message_id, "consent_required": consent_required},
        key=f"wa-send-{message_id}",
        max_attempts=whatsapp.settings.whatsapp_send_max_attempts,
        conn=conn,
    )


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
    require_one_kind(text, template)
    queue = require_queue(whatsapp)
    now = whatsapp.runtime.clock.now()
    recipient = await load_recipient(conn, convo_id)
    require_sending(whatsapp)
    if enforce_consent:
        await require_consent(conn, recipient, now)
    if text is not None:
        require_open_window(recipient, now)
        if marketing:
            text = marketing_text(whatsapp, recipient, text)
        draft = text_draft(text, reply_to=reply_to)
    else:
        assert template is not None
        draft = template_draft(template)
    message_id = await store_queued(
        conn,
        convo_id,
        draft,
        marketing=marketing,
        reply_to=reply_to,
        created_by=created_by,
        now=from_timestamp(now),
    )
    await enqueue_send(whatsapp, queue, conn, message_id, consent_required=enforce_consent)
    return message_id


async def send_from_agent(
    whatsapp: WhatsApp,
    convo_id: int,
    *,
    text: str | None,
    template: Template | None,
    marketing: bool,
    created_by: str,
) -> dict[str, Any]:
    """An agent's message, queued in one transaction, then the worker woken and the console
    told; returns the queued message as the CRM shows it."""
    runtime = whatsapp.runtime
    queue = require_queue(whatsapp)
    async with runtime.db.begin() as conn:
        message_id = await queue_outbound(
            whatsapp,
            conn,
            convo_id,
            text=text,
            template=template,
            marketing=marketing,
            created_by=created_by,
        )
        message = await crm.get_message(conn, message_id)
    queue.wake()
    event = live.message_event(message_id, convo_id, "out", message["kind"], "queued")
    await live.publish(runtime.backends, [event])
    return message


async def queue_read_receipt(queue: JobQueue, conn: AsyncConnection, provider_id: str) -> None:
    """WhatsApp marks every earlier message of the chat read with the newest one."""
    await queue.enqueue(
        READ_QUEUE, {"provider_id": provider_id}, key=f"wa-read-{provider_id}", conn=conn
    )
