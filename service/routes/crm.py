"""Admin CRM API: conversations, messages, contacts, notes, and sending WhatsApp messages."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core.errors import BackendUnavailable
from core.json_depth import MAX_STORED_DEPTH, json_depth
from core.whatsapp.texts import TEXT_MAX_CHARS
from service.audit import record_audit
from service.db.types import from_timestamp
from service.endpoint import admin_principal, api
from service.errors import ApiError
from service.responses import json_response
from service.runtime import get_runtime
from service.validation import parse_body, parse_query
from service.whatsapp import crm, live
from service.whatsapp.consent import whatsapp_allowed
from service.whatsapp.facility import get_whatsapp
from service.whatsapp.outbound import READ_QUEUE, Template, queue_outbound
from service.whatsapp.webhook import PayloadRejected

MAX_ID = 2**63 - 1


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConvoQuery(Strict):
    status: Literal["open", "closed"] | None = None
    channel: Literal["whatsapp", "email"] | None = None
    unread: bool | None = None
    limit: int = Field(default=50, ge=1, le=crm.MAX_PAGE)
    cursor: str | None = Field(default=None, max_length=64)


class MessageQuery(Strict):
    before: int | None = Field(default=None, ge=1, le=MAX_ID)
    after: int | None = Field(default=None, ge=0, le=MAX_ID)
    limit: int = Field(default=50, ge=1, le=crm.MAX_PAGE)


class TemplateIn(Strict):
    name: str = Field(min_length=1, max_length=512, pattern=r"^[a-z0-9_]+$")
    language: str = Field(min_length=2, max_length=15, pattern=r"^[A-Za-z]{2,3}(_[A-Za-z]{2,4})?$")
    components: list[dict[str, Any]] = Field(default_factory=list, max_length=20)

    @field_validator("components")
    @classmethod
    def storable(cls, components: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # Stored in the message's JSON payload, which MariaDB refuses past 32 levels.
        if json_depth(components) > MAX_STORED_DEPTH:
            raise ValueError(f"components nest deeper than {MAX_STORED_DEPTH} levels")
        try:
            # What storage and the send job do with them: orjson has no integers beyond 64 bits.
            orjson.dumps(components)
        except orjson.JSONEncodeError:
            raise ValueError("components hold a number outside the 64-bit range") from None
        return components


class SendIn(Strict):
    convo_id: int = Field(ge=1, le=MAX_ID)
    text: str | None = Field(default=None, min_length=1, max_length=TEXT_MAX_CHARS)
    template: TemplateIn | None = None
    #: Marketing texts carry the unsubscribe line in the contact's language.
    marketing: bool = False

    @model_validator(mode="after")
    def one_kind(self) -> SendIn:
        if (self.text is None) == (self.template is None):
            raise ValueError("give exactly one of text or template")
        return self


class ContactPatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=191)
    email: str | None = Field(default=None, max_length=191, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str | None = Field(default=None, min_length=3, max_length=32, pattern=r"^\+?[0-9 ()-]+$")
    locale: Literal["tr", "de", "en"] | None = None


class NoteIn(Strict):
    body: str = Field(min_length=1, max_length=10_000)


class SearchQuery(Strict):
    q: str = Field(min_length=1, max_length=100)
    limit: int = Field(default=20, ge=1, le=100)


def _id(request: Request, name: str) -> int:
    """A path id; anything that is not a positive 63-bit integer names nothing (404)."""
    raw = request.path_params[name]
    value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 19 else 0
    if not 1 <= value <= MAX_ID:
        raise ApiError(404, "not_found", f"no such {name.removesuffix('_id')}")
    return value


@api("List conversations (latest activity first)", query=ConvoQuery, tags=["crm"], admin=True)
async def list_convos(request: Request) -> Response:
    query = parse_query(request, ConvoQuery)
    runtime = get_runtime(request)
    async with runtime.db.connect() as conn:
        page = await crm.list_convos(
            conn,
            crm.ConvoFilter(query.status, query.channel, query.unread),
            limit=query.limit,
            cursor=query.cursor,
            now=runtime.clock.now(),
        )
    return json_response(page)


@api("One conversation with its contact card", tags=["crm"], admin=True)
async def get_convo(request: Request) -> Response:
    runtime = get_runtime(request)
    convo_id = _id(request, "convo_id")
    now = runtime.clock.now()
    async with runtime.db.connect() as conn:
        row = await crm.get_convo(conn, convo_id)
        contact = await crm.get_contact(conn, row.contact_id)
        card = crm.contact_card(contact)
        card["whatsapp_consent"] = await whatsapp_allowed(conn, contact.id, now)
        card["notes"] = await crm.list_notes(conn, contact.id)
    return json_response({"convo": crm.convo_view(row, now), "contact": card})


@api("Messages of a conversation (cursor pages)", query=MessageQuery, tags=["crm"], admin=True)
async def list_messages(request: Request) -> Response:
    query = parse_query(request, MessageQuery)
    runtime = get_runtime(request)
    convo_id = _id(request, "convo_id")
    async with runtime.db.connect() as conn:
        await crm.get_convo(conn, convo_id)
        page = await crm.message_page(
            conn, convo_id, before=query.before, after=query.after, limit=query.limit
        )
    return json_response(page)


async def _set_status(request: Request, status: str) -> Response:
    principal = admin_principal(request)
    runtime = get_runtime(request)
    convo_id = _id(request, "convo_id")
    async with runtime.db.begin() as conn:
        await crm.set_convo_status(conn, convo_id, status)
        await record_audit(
            conn,
            actor=principal.id,
            action=f"crm.convo.{'reopen' if status == 'open' else 'close'}",
            subject=f"convo:{convo_id}",
            ts=from_timestamp(runtime.clock.now()),
        )
        row = await crm.get_convo(conn, convo_id)
    return json_response(crm.convo_view(row, runtime.clock.now()))


@api("Close a conversation", tags=["crm"], admin=True)
async def close_convo(request: Request) -> Response:
    return await _set_status(request, "closed")


@api("Reopen a conversation", tags=["crm"], admin=True)
async def reopen_convo(request: Request) -> Response:
    return await _set_status(request, "open")


@api("Mark a conversation read (sends the WhatsApp read receipt)", tags=["crm"], admin=True)
async def read_convo(request: Request) -> Response:
    runtime = get_runtime(request)
    convo_id = _id(request, "convo_id")
    now = from_timestamp(runtime.clock.now())
    queue = runtime.queue
    async with runtime.db.begin() as conn:
        latest = await crm.mark_read(conn, convo_id, now)
        receipt = latest is not None and queue is not None
        if latest is not None and queue is not None:
            # WhatsApp marks every earlier message of the chat read with the newest one.
            await queue.enqueue(
                READ_QUEUE, {"provider_id": latest}, key=f"wa-read-{latest}", conn=conn
            )
    return json_response({"convo_id": convo_id, "unread": 0, "receipt_queued": receipt})


@api("Send a WhatsApp text or template", body=SendIn, status=202, tags=["crm"], admin=True)
async def send(request: Request) -> Response:
    principal = admin_principal(request)
    body = await parse_body(request, SendIn)
    runtime = get_runtime(request)
    whatsapp = get_whatsapp(runtime)
    if runtime.queue is None:
        raise BackendUnavailable("queue", "the outbound queue is not configured")
    template = (
        Template(body.template.name, body.template.language, body.template.components)
        if body.template
        else None
    )
    async with runtime.db.begin() as conn:
        message_id = await queue_outbound(
            whatsapp,
            conn,
            body.convo_id,
            text=body.text,
            template=template,
            marketing=body.marketing,
            created_by=principal.id,
        )
        page = await crm.message_page(
            conn, body.convo_id, before=message_id + 1, after=None, limit=1
        )
    runtime.queue.wake()
    kind = "text" if template is None else "template"
    await live.publish(
        runtime.backends, [live.message_event(message_id, body.convo_id, "out", kind, "queued")]
    )
    return json_response(page["items"][0], status=202)


@api("Process a stored WhatsApp webhook delivery again", tags=["crm"], admin=True)
async def replay_event(request: Request) -> Response:
    principal = admin_principal(request)
    runtime = get_runtime(request)
    event_id = _id(request, "event_id")
    try:
        outcome = await get_whatsapp(runtime).processor.replay(event_id)
    except PayloadRejected as exc:
        raise ApiError(400, "invalid_payload", exc.reason, {"event_id": event_id}) from None
    async with runtime.db.begin() as conn:
        await record_audit(
            conn,
            actor=principal.id,
            action="whatsapp.webhook.replay",
            subject=f"wa_event:{event_id}",
            details={"messages": len(outcome.stored), "duplicates": outcome.duplicates},
            ts=from_timestamp(runtime.clock.now()),
        )
    return json_response(
        {
            "event_id": event_id,
            "messages": len(outcome.stored),
            "duplicates": outcome.duplicates,
            "statuses": len(outcome.changes),
        }
    )


@api("Search contacts by name, phone or e-mail", query=SearchQuery, tags=["crm"], admin=True)
async def search_contacts(request: Request) -> Response:
    query = parse_query(request, SearchQuery)
    async with get_runtime(request).db.connect() as conn:
        items = await crm.search_contacts(conn, query.q, query.limit)
    return json_response({"items": items})


@api("Update a contact", body=ContactPatch, tags=["crm"], admin=True)
async def patch_contact(request: Request) -> Response:
    principal = admin_principal(request)
    body = await parse_body(request, ContactPatch)
    runtime = get_runtime(request)
    contact_id = _id(request, "contact_id")
    changes = body.model_dump(exclude_unset=True)
    if any(value is None for key, value in changes.items() if key in ("name", "locale")):
        raise ApiError(422, "validation_failed", "name and locale cannot be cleared")
    now = from_timestamp(runtime.clock.now())
    async with runtime.db.begin() as conn:
        row = await crm.update_contact(conn, contact_id, changes, now)
        await record_audit(
            conn,
            actor=principal.id,
            action="crm.contact.update",
            subject=f"contact:{contact_id}",
            details={"fields": sorted(changes)},
            ts=now,
        )
    return json_response(crm.contact_card(row))


@api("Delete a contact (soft)", status=204, tags=["crm"], admin=True)
async def delete_contact(request: Request) -> Response:
    principal = admin_principal(request)
    runtime = get_runtime(request)
    contact_id = _id(request, "contact_id")
    now = from_timestamp(runtime.clock.now())
    async with runtime.db.begin() as conn:
        await crm.delete_contact(conn, contact_id, now)
        await record_audit(
            conn,
            actor=principal.id,
            action="crm.contact.delete",
            subject=f"contact:{contact_id}",
            ts=now,
        )
    return Response(status_code=204)


@api("Add a note to a contact", body=NoteIn, status=201, tags=["crm"], admin=True)
async def add_note(request: Request) -> Response:
    principal = admin_principal(request)
    body = await parse_body(request, NoteIn)
    runtime = get_runtime(request)
    contact_id = _id(request, "contact_id")
    async with runtime.db.begin() as conn:
        note = await crm.add_note(
            conn, contact_id, body.body, principal.id, from_timestamp(runtime.clock.now())
        )
    return json_response(note, status=201)


@api("Notes of a contact (newest first)", tags=["crm"], admin=True)
async def list_notes(request: Request) -> Response:
    contact_id = _id(request, "contact_id")
    async with get_runtime(request).db.connect() as conn:
        notes = await crm.list_notes(conn, contact_id)
    return json_response({"items": notes})


@api("Delete a note (soft)", status=204, tags=["crm"], admin=True)
async def delete_note(request: Request) -> Response:
    runtime = get_runtime(request)
    note_id = _id(request, "note_id")
    async with runtime.db.begin() as conn:
        await crm.delete_note(conn, note_id, from_timestamp(runtime.clock.now()))
    return Response(status_code=204)


routes: list[BaseRoute] = [
    Route("/admin/crm/convos", list_convos, methods=["GET"]),
    Route("/admin/crm/convos/{convo_id}", get_convo, methods=["GET"]),
    Route("/admin/crm/convos/{convo_id}/messages", list_messages, methods=["GET"]),
    Route("/admin/crm/convos/{convo_id}/close", close_convo, methods=["POST"]),
    Route("/admin/crm/convos/{convo_id}/reopen", reopen_convo, methods=["POST"]),
    Route("/admin/crm/convos/{convo_id}/read", read_convo, methods=["POST"]),
    Route("/admin/crm/contacts", search_contacts, methods=["GET"]),
    Route("/admin/crm/contacts/{contact_id}", patch_contact, methods=["PATCH"]),
    Route("/admin/crm/contacts/{contact_id}", delete_contact, methods=["DELETE"]),
    Route("/admin/crm/contacts/{contact_id}/notes", add_note, methods=["POST"]),
    Route("/admin/crm/contacts/{contact_id}/notes", list_notes, methods=["GET"]),
    Route("/admin/crm/notes/{note_id}", delete_note, methods=["DELETE"]),
    Route("/admin/wa/send", send, methods=["POST"]),
    Route("/admin/wa/events/{event_id}/replay", replay_event, methods=["POST"]),
]
