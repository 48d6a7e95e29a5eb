"""CRM queries behind the admin API, each on the caller's connection: conversation lists with
keyset cursors, message pages, close/reopen, mark read, contact edits, notes, contact search.
Transactions and audit records are the desk's (``service/whatsapp/desk.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import and_, func, insert, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.whatsapp.window import window_closes_at, window_open
from service.backends import Backends
from service.cache.aside import CacheAside, invalidate_after_write
from service.db import Database
from service.db.tables.crm import crm_contacts, crm_convos, crm_messages, crm_notes
from service.db.types import from_timestamp
from service.errors import ApiError
from service.whatsapp import cursor as convo_cursor
from service.whatsapp.store import open_key

MAX_PAGE = 200
#: A message page runs in one direction: the rule, and the words of its refusal (422).
ONE_DIRECTION = "give before or after, not both"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def contact_card(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "email": row.email,
        "phone": row.phone,
        "wa_id": row.wa_id,
        "locale": row.locale,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
    }


def convo_view(row: Any, now: float) -> dict[str, Any]:
    last_inbound = row.last_inbound_at.timestamp() if row.last_inbound_at else None
    closes = window_closes_at(last_inbound)
    return {
        "id": row.id,
        "contact_id": row.contact_id,
        "contact_name": row.contact_name,
        "channel": row.channel,
        "status": row.status,
        "unread": row.unread,
        "meta": row.meta,
        "created_at": _iso(row.created_at),
        "last_inbound_at": _iso(row.last_inbound_at),
        "last_activity_at": _iso(row.last_activity_at),
        "window_open": window_open(last_inbound, now),
        "window_closes_at": _iso(from_timestamp(closes)) if closes else None,
    }


def message_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "convo_id": row.convo_id,
        "direction": row.direction,
        "kind": row.kind,
        "body": row.body,
        "payload": row.payload,
        "provider_id": row.provider_id,
        "reply_to": row.reply_to,
        "status": row.status,
        "created_at": _iso(row.created_at),
        "queued_at": _iso(row.queued_at),
        "sent_at": _iso(row.sent_at),
        "delivered_at": _iso(row.delivered_at),
        "read_at": _iso(row.read_at),
        "failed_at": _iso(row.failed_at),
        "error": row.error,
        "created_by": row.created_by,
        "marketing": bool(row.marketing),
    }


_CONVO_COLUMNS = (*crm_convos.c, crm_contacts.c.name.label("contact_name"))
_CONVO_FROM = crm_convos.join(crm_contacts, crm_convos.c.contact_id == crm_contacts.c.id)


@dataclass(frozen=True)
class ConvoFilter:
    status: str | None = None
    channel: str | None = None
    unread: bool | None = None


async def list_convos(
    conn: AsyncConnection, flt: ConvoFilter, *, limit: int, cursor: str | None, now: float
) -> dict[str, Any]:
    """Most recent activity first; ``next_cursor`` continues after the last item."""
    query = (
        select(*_CONVO_COLUMNS).select_from(_CONVO_FROM).where(crm_contacts.c.deleted_at.is_(None))
    )
    if flt.status:
        query = query.where(crm_convos.c.status == flt.status)
    if flt.channel:
        query = query.where(crm_convos.c.channel == flt.channel)
    if flt.unread is True:
        query = query.where(crm_convos.c.unread > 0)
    elif flt.unread is False:
        query = query.where(crm_convos.c.unread == 0)
    if cursor:
        at, convo_id = convo_cursor.decode(cursor)
        # An id past the BIGINT range cannot be bound; every id is below it anyway.
        tie = crm_convos.c.id < convo_id if convo_id <= convo_cursor.MAX_ID else true()
        query = query.where(
            or_(
                crm_convos.c.last_activity_at < at,
                and_(crm_convos.c.last_activity_at == at, tie),
            )
        )
    query = query.order_by(crm_convos.c.last_activity_at.desc(), crm_convos.c.id.desc())
    fetched = (await conn.execute(query.limit(limit + 1))).all()
    page = fetched[:limit]
    has_more = len(fetched) > limit
    previews = await _last_messages(conn, [r.id for r in page])
    items = []
    for row in page:
        view = convo_view(row, now)
        view["last_message"] = previews.get(row.id)
        items.append(view)
    return {
        "items": items,
        "has_more": has_more,
        "next_cursor": convo_cursor.encode(page[-1].last_activity_at, page[-1].id)
        if has_more and page
        else None,
    }


# --- conversation lists through the cache ---------------------------------------------------
#
# One tag for every list page: the CRM has one set of conversations that every admin sees the
# same (no tenant, no per-admin visibility), so a page is keyed by its filter, limit and cursor
# only. Every committed write that changes what a list shows drops the tag: inbound messages,
# status receipts, sends and their outcomes (``service/whatsapp/live.py``, after each commit
# those announce), the desk's close/reopen, read, contact edit and delete, and the web chats
# support stores (``service/support/desk.py``). Notes are not part of a list.

CONVO_LIST_CACHE = "crm_convos"
CONVO_LIST_TAG = "crm:convos"


async def cached_convos(
    cache: CacheAside,
    db: Database,
    flt: ConvoFilter,
    *,
    limit: int,
    cursor: str | None,
    now: float,
    ttl: float,
) -> dict[str, Any]:
    """``list_convos`` through the cache; ``window_open`` is computed for ``now`` on each read
    (it changes with time alone, not with a write)."""

    async def load() -> dict[str, Any]:
        async with db.connect() as conn:
            return await list_convos(conn, flt, limit=limit, cursor=cursor, now=now)

    if ttl <= 0:
        return await load()
    key = orjson.dumps([flt.status, flt.channel, flt.unread, limit, cursor]).decode()
    page: dict[str, Any] = await cache.get_or_load(
        CONVO_LIST_CACHE, key, load, ttl=ttl, tags=[CONVO_LIST_TAG]
    )
    for item in page["items"]:
        inbound = item["last_inbound_at"]
        last = datetime.fromisoformat(inbound).timestamp() if inbound else None
        item["window_open"] = window_open(last, now)
    return page


async def convo_lists_changed(backends: Backends) -> None:
    """Call after a committed write that changes what a conversation list shows."""
    await invalidate_after_write(backends, CONVO_LIST_TAG)


PREVIEW_CHARS = 200


async def _last_messages(conn: AsyncConnection, convo_ids: list[int]) -> dict[int, Any]:
    """The newest message of each conversation, shortened, for list previews (two queries)."""
    if not convo_ids:
        return {}
    newest = select(func.max(crm_messages.c.id)).where(crm_messages.c.convo_id.in_(convo_ids))
    ids = list((await conn.execute(newest.group_by(crm_messages.c.convo_id))).scalars())
    rows = await conn.execute(
        select(
            crm_messages.c.convo_id,
            crm_messages.c.direction,
            crm_messages.c.kind,
            crm_messages.c.body,
            crm_messages.c.status,
            crm_messages.c.created_at,
        ).where(crm_messages.c.id.in_(ids))
    )
    return {
        r.convo_id: {
            "direction": r.direction,
            "kind": r.kind,
            "body": None if r.body is None else r.body[:PREVIEW_CHARS],
            "status": r.status,
            "created_at": _iso(r.created_at),
        }
        for r in rows
    }


async def get_convo(conn: AsyncConnection, convo_id: int) -> Any:
    row = (
        await conn.execute(
            select(*_CONVO_COLUMNS).select_from(_CONVO_FROM).where(crm_convos.c.id == convo_id)
        )
    ).first()
    if row is None:
        raise ApiError(404, "not_found", "no such conversation", {"convo_id": convo_id})
    return row


async def get_contact(conn: AsyncConnection, contact_id: int) -> Any:
    row = (
        await conn.execute(
            select(crm_contacts).where(
                crm_contacts.c.id == contact_id, crm_contacts.c.deleted_at.is_(None)
            )
        )
    ).first()
    if row is None:
        raise ApiError(404, "not_found", "no such contact", {"contact_id": contact_id})
    return row


async def message_page(
    conn: AsyncConnection,
    convo_id: int,
    *,
    before: int | None,
    after: int | None,
    limit: int,
) -> dict[str, Any]:
    """Messages in ascending id order.

    Without ``after`` the page is the newest ``limit`` messages (older than ``before`` if given);
    with ``after`` it is the oldest ``limit`` messages newer than ``after``. ``has_more`` says
    whether more exist in the direction of travel; ``prev_cursor`` (use as ``before``) and
    ``next_cursor`` (use as ``after``) are set when older/newer messages exist.
    """
    if before is not None and after is not None:
        raise ApiError(422, "validation_failed", ONE_DIRECTION)
    base = select(crm_messages).where(crm_messages.c.convo_id == convo_id)
    if after is not None:
        query = base.where(crm_messages.c.id > after).order_by(crm_messages.c.id.asc())
    else:
        query = base.order_by(crm_messages.c.id.desc())
        if before is not None:
            query = query.where(crm_messages.c.id < before)
    fetched = (await conn.execute(query.limit(limit + 1))).all()
    has_more = len(fetched) > limit
    page = list(fetched[:limit])
    if after is None:
        page.reverse()
    if not page:
        return {"items": [], "has_more": False, "prev_cursor": None, "next_cursor": None}
    first, last = page[0].id, page[-1].id
    older = await _exists(conn, convo_id, crm_messages.c.id < first)
    newer = await _exists(conn, convo_id, crm_messages.c.id > last)
    return {
        "items": [message_view(r) for r in page],
        "has_more": has_more,
        "prev_cursor": first if older else None,
        "next_cursor": last if newer else None,
    }


async def get_message(conn: AsyncConnection, message_id: int) -> dict[str, Any]:
    row = (await conn.execute(select(crm_messages).where(crm_messages.c.id == message_id))).one()
    return message_view(row)


async def _exists(conn: AsyncConnection, convo_id: int, condition: Any) -> bool:
    found = await conn.scalar(
        select(crm_messages.c.id).where(crm_messages.c.convo_id == convo_id, condition).limit(1)
    )
    return found is not None


async def set_convo_status(conn: AsyncConnection, convo_id: int, status: str) -> None:
    row = await get_convo(conn, convo_id)
    if row.status == status:
        return
    key = open_key(row.contact_id, row.channel) if status == "open" else None
    if key is not None:
        clash = await conn.scalar(select(crm_convos.c.id).where(crm_convos.c.open_key == key))
        if clash is not None:
            raise ApiError(
                409,
                "already_open",
                "the contact already has an open conversation on this channel",
                {"open_convo_id": clash},
            )
    await conn.execute(
        update(crm_convos).where(crm_convos.c.id == convo_id).values(status=status, open_key=key)
    )


async def mark_read(conn: AsyncConnection, convo_id: int, now: datetime) -> str | None:
    """Marks inbound messages read; returns the newest inbound provider id for the receipt."""
    await get_convo(conn, convo_id)
    await conn.execute(update(crm_convos).where(crm_convos.c.id == convo_id).values(unread=0))
    await conn.execute(
        update(crm_messages)
        .where(
            crm_messages.c.convo_id == convo_id,
            crm_messages.c.direction == "in",
            crm_messages.c.status == "received",
        )
        .values(status="read", read_at=now)
    )
    latest = await conn.scalar(
        select(crm_messages.c.provider_id)
        .where(crm_messages.c.convo_id == convo_id, crm_messages.c.direction == "in")
        .order_by(crm_messages.c.id.desc())
        .limit(1)
    )
    return None if latest is None else str(latest)


async def update_contact(
    conn: AsyncConnection, contact_id: int, changes: dict[str, Any], now: datetime
) -> Any:
    await get_contact(conn, contact_id)
    if changes:
        await conn.execute(
            update(crm_contacts)
            .where(crm_contacts.c.id == contact_id)
            .values(**changes, updated_at=now)
        )
    return await get_contact(conn, contact_id)


async def delete_contact(conn: AsyncConnection, contact_id: int, now: datetime) -> None:
    """Soft delete: hidden from lists and searches, its conversations closed; history is kept
    (a customer who writes again comes back as a live contact)."""
    await get_contact(conn, contact_id)
    await conn.execute(
        update(crm_contacts)
        .where(crm_contacts.c.id == contact_id)
        .values(deleted_at=now, updated_at=now)
    )
    await conn.execute(
        update(crm_convos)
        .where(crm_convos.c.contact_id == contact_id, crm_convos.c.status == "open")
        .values(status="closed", open_key=None)
    )


def note_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "contact_id": row.contact_id,
        "body": row.body,
        "created_by": row.created_by,
        "created_at": _iso(row.created_at),
    }


async def add_note(
    conn: AsyncConnection, contact_id: int, body: str, created_by: str, now: datetime
) -> dict[str, Any]:
    await get_contact(conn, contact_id)
    result = await conn.execute(
        insert(crm_notes).values(
            contact_id=contact_id, body=body, created_by=created_by[:191], created_at=now
        )
    )
    primary_key = result.inserted_primary_key
    assert primary_key is not None
    row = (await conn.execute(select(crm_notes).where(crm_notes.c.id == int(primary_key[0])))).one()
    return note_view(row)


async def list_notes(conn: AsyncConnection, contact_id: int) -> list[dict[str, Any]]:
    await get_contact(conn, contact_id)
    result = await conn.execute(
        select(crm_notes)
        .where(crm_notes.c.contact_id == contact_id, crm_notes.c.deleted_at.is_(None))
        .order_by(crm_notes.c.id.desc())
        .limit(MAX_PAGE)
    )
    return [note_view(r) for r in result]


async def delete_note(conn: AsyncConnection, note_id: int, now: datetime) -> None:
    result = await conn.execute(
        update(crm_notes)
        .where(crm_notes.c.id == note_id, crm_notes.c.deleted_at.is_(None))
        .values(deleted_at=now)
    )
    if result.rowcount == 0:
        raise ApiError(404, "not_found", "no such note", {"note_id": note_id})


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search_contacts(conn: AsyncConnection, text: str, limit: int) -> list[dict[str, Any]]:
    """Case-insensitive substring match on name, phone, WhatsApp id and e-mail."""
    pattern = _like_pattern(text.strip().lower())
    digits = "".join(ch for ch in text if ch.isdigit())
    conditions = [
        func.lower(crm_contacts.c.name).like(pattern, escape="\\"),
        func.lower(crm_contacts.c.email).like(pattern, escape="\\"),
        crm_contacts.c.phone.like(pattern, escape="\\"),
    ]
    if digits:
        # "+90 532 123" finds 905321234567: phone numbers are matched on their digits.
        conditions.append(crm_contacts.c.wa_id.like(_like_pattern(digits), escape="\\"))
    result = await conn.execute(
        select(crm_contacts)
        .where(crm_contacts.c.deleted_at.is_(None), or_(*conditions))
        .order_by(crm_contacts.c.updated_at.desc(), crm_contacts.c.id.desc())
        .limit(limit)
    )
    return [contact_card(r) for r in result]
