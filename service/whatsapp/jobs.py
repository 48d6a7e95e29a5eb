"""Queue job handlers (send, read receipt, auto-reply) and the inbound hook that reacts to
consent keywords and schedules the auto-reply job for every new inbound message."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.i18n import resolve_locale
from core.jobs import Job, PermanentFailure, RetryLater
from core.whatsapp.graph_errors import ErrorAction
from core.whatsapp.keywords import detect_keyword
from core.whatsapp.texts import START_ACK, STOP_ACK
from service.db.tables.crm import crm_contacts, crm_convos, crm_messages
from service.db.types import from_timestamp
from service.errors import ApiError
from service.logging import get_logger
from service.queue.handlers import HandlerRegistry
from service.whatsapp import live
from service.whatsapp.consent import opt_in, opt_out, whatsapp_allowed
from service.whatsapp.facility import WhatsApp
from service.whatsapp.graph import GraphError
from service.whatsapp.metrics import SENDS
from service.whatsapp.outbound import AUTOREPLY_QUEUE, READ_QUEUE, SEND_QUEUE, queue_outbound
from service.whatsapp.store import StoredInbound, record_failure, record_sent

log = get_logger("kervan.whatsapp.jobs")
#: Back-off after a 429 from Graph (throttling is not the message's fault: no attempt used).
THROTTLE_DELAY_SECONDS = 30.0
#: Pacing policy of the Graph API calls, keyed by the sender's phone-number id.
PHONE_PACING = "whatsapp.phone"
#: The consent source of a STOP/START keyword.
KEYWORD_SOURCE = "whatsapp_keyword"


def _message_id(job: Job) -> int:
    value = job.payload.get("message_id")
    if not isinstance(value, int) or isinstance(value, bool):
        raise PermanentFailure("payload without an integer message_id")
    return value


async def send_message(whatsapp: WhatsApp, job: Job) -> None:
    """Sends one queued outbound message through the Graph API."""
    runtime = whatsapp.runtime
    message_id = _message_id(job)
    async with runtime.db.connect() as conn:
        row = (
            await conn.execute(
                select(
                    crm_messages.c.status,
                    crm_messages.c.payload,
                    crm_contacts.c.wa_id,
                    crm_contacts.c.id.label("contact_id"),
                )
                .select_from(
                    crm_messages.join(crm_convos, crm_messages.c.convo_id == crm_convos.c.id).join(
                        crm_contacts, crm_convos.c.contact_id == crm_contacts.c.id
                    )
                )
                .where(crm_messages.c.id == message_id, crm_messages.c.direction == "out")
            )
        ).first()
        # Consent may have been withdrawn (STOP, unsubscribe link) while the message waited.
        allowed = job.payload.get("consent_required") is False or (
            row is not None and await whatsapp_allowed(conn, row.contact_id, runtime.clock.now())
        )
    if row is None:
        raise PermanentFailure(f"outbound message {message_id} does not exist")
    if row.status != "queued":
        return  # already handled by an earlier attempt whose outcome was recorded
    if not allowed:
        async with runtime.db.begin() as conn:
            change = await record_failure(
                conn,
                message_id,
                {"action": "no_retry", "code": None, "message": "WhatsApp consent withdrawn"},
                from_timestamp(runtime.clock.now()),
            )
        if change is not None:
            await live.publish(runtime.backends, live.status_events([change]))
        raise PermanentFailure("the contact withdrew WhatsApp consent before the send")
    try:
        provider_id = await whatsapp.graph.send(row.wa_id, dict(row.payload))
    except GraphError as exc:
        SENDS.labels(exc.action.value).inc()
        await _on_send_error(whatsapp, job, message_id, exc)
        return
    SENDS.labels("sent").inc()
    async with runtime.db.begin() as conn:
        changes = await record_sent(
            conn, message_id, provider_id, from_timestamp(runtime.clock.now())
        )
    await live.publish(runtime.backends, live.status_events(changes))


async def _on_send_error(whatsapp: WhatsApp, job: Job, message_id: int, exc: GraphError) -> None:
    runtime = whatsapp.runtime
    if exc.action is ErrorAction.RETRY and not job.is_last_attempt:
        if exc.http_status == 429:
            raise RetryLater(THROTTLE_DELAY_SECONDS, "Graph API throttled the send") from None
        raise exc  # an ordinary failure: the queue retries with backoff
    async with runtime.db.begin() as conn:
        change = await record_failure(
            conn, message_id, exc.as_record(), from_timestamp(runtime.clock.now())
        )
    if change is not None:
        await live.publish(runtime.backends, live.status_events([change]))
    raise PermanentFailure(f"{exc.action.value}: {exc.message}") from None


async def send_read_receipt(whatsapp: WhatsApp, job: Job) -> None:
    provider_id = job.payload.get("provider_id")
    if not isinstance(provider_id, str) or not provider_id:
        raise PermanentFailure("payload without a provider_id")
    try:
        await whatsapp.graph.mark_read(provider_id)
    except GraphError as exc:
        if exc.action is ErrorAction.RETRY:
            raise
        raise PermanentFailure(f"read receipt refused: {exc.message}") from None


async def auto_reply(whatsapp: WhatsApp, job: Job) -> None:
    """The auto-reply hook: no-op unless the keyword/FAQ responder is switched on."""
    if whatsapp.faq is None:
        return
    message_id = _message_id(job)
    runtime = whatsapp.runtime
    async with runtime.db.connect() as conn:
        row = (
            await conn.execute(
                select(
                    crm_messages.c.convo_id, crm_messages.c.body, crm_messages.c.provider_id
                ).where(crm_messages.c.id == message_id, crm_messages.c.direction == "in")
            )
        ).first()
    if row is None:
        return
    answer = whatsapp.faq.answer(row.body)
    if answer is None:
        return
    try:
        async with runtime.db.begin() as conn:
            await queue_outbound(
                whatsapp,
                conn,
                row.convo_id,
                text=answer,
                created_by="auto-reply",
                reply_to=row.provider_id,
            )
    except ApiError as exc:  # no consent or window closed: an auto-reply is never forced
        log.info("auto-reply skipped: %s", exc.code)


def inbound_hook(whatsapp: WhatsApp) -> Any:
    """The webhook processor's hook, bound to this facility."""

    async def hook(
        conn: AsyncConnection, stored: Sequence[StoredInbound], now: datetime
    ) -> list[dict[str, Any]]:
        return await on_inbound(whatsapp, conn, stored, now)

    return hook


async def on_inbound(
    whatsapp: WhatsApp, conn: AsyncConnection, stored: Sequence[StoredInbound], now: datetime
) -> list[dict[str, Any]]:
    """Consent keywords, their one-time acknowledgement, and one auto-reply job per message
    while an auto-reply responder is switched on."""
    queue = whatsapp.runtime.queue
    now_ts = now.timestamp()
    events: list[dict[str, Any]] = []
    for item in stored:
        action = detect_keyword(item.event.body) if item.event.kind == "text" else None
        if action is not None:
            if action == "stop":
                changed = await opt_out(
                    conn, item.contact_id, now_ts, source=KEYWORD_SOURCE, policy=whatsapp.consent
                )
                texts = STOP_ACK
            else:
                changed = await opt_in(
                    conn, item.contact_id, now_ts, source=KEYWORD_SOURCE, policy=whatsapp.consent
                )
                texts = START_ACK
            if changed and queue is not None:
                locale = await conn.scalar(
                    select(crm_contacts.c.locale).where(crm_contacts.c.id == item.contact_id)
                )
                try:
                    ack_id = await queue_outbound(
                        whatsapp,
                        conn,
                        item.convo_id,
                        text=texts[resolve_locale(locale)],
                        created_by="system",
                        enforce_consent=False,
                        reply_to=item.event.provider_id,
                    )
                except ApiError as exc:  # e.g. a redelivered keyword older than the window
                    log.info("keyword acknowledgement not sent: %s", exc.code)
                else:
                    events.append(
                        live.message_event(ack_id, item.convo_id, "out", "text", "queued")
                    )
            continue
        # The default hook does nothing, so it costs no job: a no-op job per message would add
        # an outbox row and a worker round trip to every inbound message for no effect. Nor
        # does one whose reply could not be sent (WhatsApp sending not configured).
        if queue is not None and whatsapp.faq is not None and whatsapp.sending_configured:
            await queue.enqueue(
                AUTOREPLY_QUEUE,
                {"message_id": item.message_id},
                key=f"wa-autoreply-{item.message_id}",
                conn=conn,
            )
    return events


def register_whatsapp_handlers(whatsapp: WhatsApp, handlers: HandlerRegistry) -> None:
    """Routes the WhatsApp queues of ``handlers`` (its runtime's registry) to this facility."""

    async def send(job: Job) -> None:
        await send_message(whatsapp, job)

    async def read(job: Job) -> None:
        await send_read_receipt(whatsapp, job)

    async def reply(job: Job) -> None:
        await auto_reply(whatsapp, job)

    # Sends and read receipts share the sender number's Cloud API throughput.
    handlers.register_pacing_policy(PHONE_PACING, whatsapp.settings.queue_whatsapp_pacing)
    sender = whatsapp.settings.whatsapp_phone_number_id or "default"

    def per_phone_number(job: Job) -> list[tuple[str, str]]:
        return [(PHONE_PACING, sender)]

    handlers.register(SEND_QUEUE, send, provider="whatsapp", pacing=per_phone_number)
    handlers.register(READ_QUEUE, read, provider="whatsapp", pacing=per_phone_number)
    handlers.register(AUTOREPLY_QUEUE, reply)
