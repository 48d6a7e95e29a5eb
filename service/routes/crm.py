"""Admin CRM API: conversations, messages, contacts, notes, and sending WhatsApp messages.

Each handler parses the request, makes one call into the WhatsApp package (the CRM desk, the
outbound module or the webhook receiver) and answers with what it returned.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from service.endpoint import admin_principal, api
from service.responses import json_response
from service.runtime import get_runtime
from service.validation import parse_body, parse_path, parse_query
from service.whatsapp.crm import ConvoFilter
from service.whatsapp.crm_schemas import (
    ContactListOut,
    ContactOut,
    ContactPatch,
    ContactPath,
    ConvoCardOut,
    ConvoOut,
    ConvoPageOut,
    ConvoPath,
    ConvoQuery,
    EventPath,
    MessageOut,
    MessagePageOut,
    MessageQuery,
    NoteIn,
    NoteListOut,
    NoteOut,
    NotePath,
    ReadOut,
    ReplayOut,
    SearchQuery,
    SendIn,
)
from service.whatsapp.crm_trash import CrmTrash
from service.whatsapp.crm_trash_schemas import (
    TrashedContactPageOut,
    TrashedContactQuery,
    TrashedNoteListOut,
)
from service.whatsapp.desk import CrmDesk
from service.whatsapp.facility import get_whatsapp
from service.whatsapp.outbound import Template, send_from_agent
from service.whatsapp.receiver import replay_delivery

P = TypeVar("P", bound=BaseModel)

NO_CONVO = {404: "No such conversation"}
NO_CONTACT = {404: "No such contact (or deleted)"}


def _path(request: Request, model: type[P]) -> P:
    """The path ids, validated by the model that documents them; an id that does not
    validate names nothing, so it is a 404 like an unknown one."""
    return parse_path(request, model, bad_path=404)


def _desk(request: Request) -> CrmDesk:
    return get_runtime(request).facility(CrmDesk)


@api(
    "List conversations (latest activity first)",
    query=ConvoQuery,
    response=ConvoPageOut,
    tags=["crm"],
    admin=True,
    responses={400: "The cursor is not one this API issued"},
)
async def list_convos(request: Request) -> Response:
    query = parse_query(request, ConvoQuery)
    page = await _desk(request).conversations(
        ConvoFilter(query.status, query.channel, query.unread),
        limit=query.limit,
        cursor=query.cursor,
    )
    return json_response(page)


@api(
    "One conversation with its contact card",
    path=ConvoPath,
    bad_path=404,
    response=ConvoCardOut,
    tags=["crm"],
    admin=True,
    responses={404: "No such conversation, or its contact was deleted"},
)
async def get_convo(request: Request) -> Response:
    path = _path(request, ConvoPath)
    return json_response(await _desk(request).conversation(path.convo_id))


@api(
    "Messages of a conversation (cursor pages)",
    path=ConvoPath,
    bad_path=404,
    query=MessageQuery,
    response=MessagePageOut,
    tags=["crm"],
    admin=True,
    responses={**NO_CONVO, 422: "Validation failed, or both before and after given"},
)
async def list_messages(request: Request) -> Response:
    query = parse_query(request, MessageQuery)
    path = _path(request, ConvoPath)
    page = await _desk(request).messages(
        path.convo_id, before=query.before, after=query.after, limit=query.limit
    )
    return json_response(page)


async def _set_status(request: Request, status: str) -> Response:
    path = _path(request, ConvoPath)
    actor = admin_principal(request).id
    return json_response(await _desk(request).set_status(actor, path.convo_id, status))


@api(
    "Close a conversation",
    path=ConvoPath,
    bad_path=404,
    response=ConvoOut,
    tags=["crm"],
    admin=True,
    responses=NO_CONVO,
)
async def close_convo(request: Request) -> Response:
    return await _set_status(request, "closed")


@api(
    "Reopen a conversation",
    path=ConvoPath,
    bad_path=404,
    response=ConvoOut,
    tags=["crm"],
    admin=True,
    responses={**NO_CONVO, 409: "The contact already has an open conversation on its channel"},
)
async def reopen_convo(request: Request) -> Response:
    return await _set_status(request, "open")


@api(
    "Mark a conversation read (sends the WhatsApp read receipt)",
    path=ConvoPath,
    bad_path=404,
    response=ReadOut,
    tags=["crm"],
    admin=True,
    responses=NO_CONVO,
)
async def read_convo(request: Request) -> Response:
    path = _path(request, ConvoPath)
    return json_response(await _desk(request).mark_read(path.convo_id))


@api(
    "Send a WhatsApp text or template",
    body=SendIn,
    response=MessageOut,
    status=202,
    tags=["crm"],
    admin=True,
    responses={
        403: "Admin access is disabled, or the contact holds no WhatsApp consent",
        404: "No such conversation",
        409: "Not a WhatsApp conversation, free text outside the 24-hour window, or WhatsApp "
        "sending not configured (`whatsapp_not_configured`)",
        422: "Validation failed, or a marketing text too long for its unsubscribe line",
        503: "The outbound queue is not available",
    },
)
async def send(request: Request) -> Response:
    body = await parse_body(request, SendIn)
    template = (
        Template(body.template.name, body.template.language, body.template.components)
        if body.template
        else None
    )
    message = await send_from_agent(
        get_whatsapp(get_runtime(request)),
        body.convo_id,
        text=body.text,
        template=template,
        marketing=body.marketing,
        created_by=admin_principal(request).id,
    )
    return json_response(message, status=202)


@api(
    "Process a stored WhatsApp webhook delivery again",
    path=EventPath,
    bad_path=404,
    response=ReplayOut,
    tags=["crm"],
    admin=True,
    responses={
        404: "No such event",
        409: "The stored delivery is not a WhatsApp notification, so it cannot be processed",
    },
)
async def replay_event(request: Request) -> Response:
    path = _path(request, EventPath)
    whatsapp = get_whatsapp(get_runtime(request))
    return json_response(
        await replay_delivery(whatsapp, admin_principal(request).id, path.event_id)
    )


@api(
    "Search contacts by name, phone or e-mail",
    query=SearchQuery,
    response=ContactListOut,
    tags=["crm"],
    admin=True,
)
async def search_contacts(request: Request) -> Response:
    query = parse_query(request, SearchQuery)
    return json_response(await _desk(request).search_contacts(query.q, query.limit))


@api(
    "Update a contact",
    body=ContactPatch,
    path=ContactPath,
    bad_path=404,
    response=ContactOut,
    tags=["crm"],
    admin=True,
    responses=NO_CONTACT,
)
async def patch_contact(request: Request) -> Response:
    body = await parse_body(request, ContactPatch)
    path = _path(request, ContactPath)
    changes = body.model_dump(exclude_unset=True)
    card = await _desk(request).update_contact(
        admin_principal(request).id, path.contact_id, changes
    )
    return json_response(card)


@api(
    "Delete a contact (soft)",
    path=ContactPath,
    bad_path=404,
    status=204,
    tags=["crm"],
    admin=True,
    responses=NO_CONTACT,
)
async def delete_contact(request: Request) -> Response:
    path = _path(request, ContactPath)
    await _desk(request).delete_contact(admin_principal(request).id, path.contact_id)
    return Response(status_code=204)


@api(
    "Add a note to a contact",
    body=NoteIn,
    path=ContactPath,
    bad_path=404,
    response=NoteOut,
    status=201,
    tags=["crm"],
    admin=True,
    responses=NO_CONTACT,
)
async def add_note(request: Request) -> Response:
    body = await parse_body(request, NoteIn)
    path = _path(request, ContactPath)
    note = await _desk(request).add_note(admin_principal(request).id, path.contact_id, body.body)
    return json_response(note, status=201)


@api(
    "Notes of a contact (newest first)",
    path=ContactPath,
    bad_path=404,
    response=NoteListOut,
    tags=["crm"],
    admin=True,
    responses=NO_CONTACT,
)
async def list_notes(request: Request) -> Response:
    path = _path(request, ContactPath)
    return json_response(await _desk(request).notes(path.contact_id))


@api(
    "Delete a note (soft)",
    path=NotePath,
    bad_path=404,
    status=204,
    tags=["crm"],
    admin=True,
    responses={404: "No such note (or already deleted)"},
)
async def delete_note(request: Request) -> Response:
    path = _path(request, NotePath)
    await _desk(request).delete_note(path.note_id)
    return Response(status_code=204)


# ---------------------------------------------------------------- the trash (crm_trash.py)

NOT_RESTORABLE = {
    409: "It is not deleted (`not_deleted`)",
    410: "Deleted longer ago than the retention period (`expired`): it is purged soon",
}


def _trash(request: Request) -> CrmTrash:
    return CrmTrash(get_runtime(request))


@api(
    "Deleted contacts, restorable within the retention period (the latest deletion first)",
    query=TrashedContactQuery,
    response=TrashedContactPageOut,
    tags=["crm"],
    admin=True,
    responses={400: "The cursor is not one this API issued"},
)
async def deleted_contacts(request: Request) -> Response:
    query = parse_query(request, TrashedContactQuery)
    return json_response(
        await _trash(request).deleted_contacts(limit=query.limit, cursor=query.cursor)
    )


@api(
    "Restore a deleted contact (with its conversations and notes)",
    path=ContactPath,
    bad_path=404,
    response=ContactOut,
    tags=["crm"],
    admin=True,
    responses={404: "No such contact", **NOT_RESTORABLE},
)
async def restore_contact(request: Request) -> Response:
    path = _path(request, ContactPath)
    actor = admin_principal(request).id
    return json_response(await _trash(request).restore_contact(actor, path.contact_id))


@api(
    "Deleted notes of a contact, restorable within the retention period",
    path=ContactPath,
    bad_path=404,
    response=TrashedNoteListOut,
    tags=["crm"],
    admin=True,
    responses=NO_CONTACT,
)
async def deleted_notes(request: Request) -> Response:
    path = _path(request, ContactPath)
    return json_response(await _trash(request).deleted_notes(path.contact_id))


@api(
    "Restore a deleted note (its contact must not be deleted)",
    path=NotePath,
    bad_path=404,
    response=NoteOut,
    tags=["crm"],
    admin=True,
    responses={
        404: "No such note",
        409: "It is not deleted (`not_deleted`), or its contact is (`contact_deleted`)",
        410: NOT_RESTORABLE[410],
    },
)
async def restore_note(request: Request) -> Response:
    path = _path(request, NotePath)
    actor = admin_principal(request).id
    return json_response(await _trash(request).restore_note(actor, path.note_id))


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
    Route("/admin/crm/trash/contacts", deleted_contacts, methods=["GET"]),
    Route("/admin/crm/contacts/{contact_id}/restore", restore_contact, methods=["POST"]),
    Route("/admin/crm/contacts/{contact_id}/notes/trash", deleted_notes, methods=["GET"]),
    Route("/admin/crm/notes/{note_id}/restore", restore_note, methods=["POST"]),
    Route("/admin/wa/send", send, methods=["POST"]),
    Route("/admin/wa/events/{event_id}/replay", replay_event, methods=["POST"]),
]
