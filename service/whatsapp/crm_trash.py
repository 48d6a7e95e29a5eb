"""The CRM trash: deleted contacts and notes, listed and restored by admins (who run the CRM)
within the retention period (``tracking_trash_retention_days``, the period of every trash; 410
``expired`` after it, when ``crm_purge`` removes them for good).

Deleting is the desk's (``service/whatsapp/crm.py``: a contact's open conversations are closed
with it). A restore clears ``deleted_at`` and nothing else: the contact is back in lists and
searches with its conversations (closed ones stay closed: an agent reopens what still matters)
and its notes; a note comes back only to a live contact (restore the contact first: 409
``contact_deleted``). Each restore is one transaction with its audit record
(``crm.contact.restore``, ``crm.note.restore``).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, true, update

from service.audit import record_audit
from service.db.tables.crm import crm_contacts, crm_notes
from service.db.types import from_timestamp
from service.errors import ApiError
from service.runtime import Runtime
from service.tracking.trash_window import check_restorable, not_deleted, restorable_until
from service.whatsapp import crm
from service.whatsapp import cursor as crm_cursor

DEFAULT_PAGE = 50
MAX_PAGE = crm.MAX_PAGE
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_CURSOR = re.compile(crm_cursor.PATTERN)


def encode_cursor(deleted_at: datetime, item_id: int) -> str:
    """The CRM's cursor form (``<micros>:<id>``), with exact integer microseconds: deletions at
    the same instant are common and a float could skip or repeat one."""
    micros = (deleted_at - _EPOCH) // _MICROSECOND
    return base64.urlsafe_b64encode(f"{micros}:{item_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    if len(cursor) > crm_cursor.MAX_LENGTH or _CURSOR.fullmatch(cursor) is None:
        raise ApiError(400, "invalid_cursor", "the cursor is not one this API issued")
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    micros, item_id = raw.split(":")
    try:
        at = _EPOCH + int(micros) * _MICROSECOND
    except OverflowError:
        at = crm_cursor.LATEST
    return at, int(item_id)


@dataclass
class CrmTrash:
    runtime: Runtime

    @property
    def days(self) -> int:
        return self.runtime.settings.tracking_trash_retention_days

    def _now(self) -> datetime:
        return from_timestamp(self.runtime.clock.now())

    def _trashed(self, deleted_at: datetime) -> dict[str, Any]:
        return {
            "deleted_at": deleted_at.isoformat(),
            "restorable_until": restorable_until(deleted_at, self.days).isoformat(),
        }

    async def deleted_contacts(
        self, *, limit: int = DEFAULT_PAGE, cursor: str | None = None
    ) -> dict[str, Any]:
        """Deleted contacts not purged yet, the latest deletion first."""
        c = crm_contacts.c
        query = select(crm_contacts).where(c.deleted_at.is_not(None))
        if cursor:
            at, last_id = decode_cursor(cursor)
            tie = c.id < last_id if last_id <= crm_cursor.MAX_ID else true()
            query = query.where(or_(c.deleted_at < at, and_(c.deleted_at == at, tie)))
        query = query.order_by(c.deleted_at.desc(), c.id.desc()).limit(limit + 1)
        async with self.runtime.db.connect() as conn:
            rows = list(await conn.execute(query))
        page, more = rows[:limit], len(rows) > limit
        return {
            "items": [{**crm.contact_card(r), **self._trashed(r.deleted_at)} for r in page],
            "next_cursor": encode_cursor(page[-1].deleted_at, page[-1].id) if more else None,
        }

    async def restore_contact(self, actor: str, contact_id: int) -> dict[str, Any]:
        now = self._now()
        async with self.runtime.db.begin() as conn:
            row = (
                await conn.execute(select(crm_contacts).where(crm_contacts.c.id == contact_id))
            ).first()
            if row is None:
                raise ApiError(404, "not_found", "no such contact", {"contact_id": contact_id})
            if row.deleted_at is None:
                raise not_deleted("contact")
            check_restorable(row.deleted_at, now, self.days)
            result = await conn.execute(
                update(crm_contacts)
                .where(crm_contacts.c.id == contact_id, crm_contacts.c.deleted_at == row.deleted_at)
                .values(deleted_at=None)
            )
            if result.rowcount != 1:  # a message of the customer revived it meanwhile
                raise not_deleted("contact")
            await record_audit(
                conn,
                actor=actor,
                action="crm.contact.restore",
                subject=f"contact:{contact_id}",
                details={"deleted_at": row.deleted_at.isoformat()},
                ts=now,
            )
            return crm.contact_card(await crm.get_contact(conn, contact_id))

    async def deleted_notes(self, contact_id: int) -> dict[str, Any]:
        """A live contact's deleted notes not purged yet, the latest deletion first."""
        n = crm_notes.c
        async with self.runtime.db.connect() as conn:
            await crm.get_contact(conn, contact_id)
            rows = await conn.execute(
                select(crm_notes)
                .where(n.contact_id == contact_id, n.deleted_at.is_not(None))
                .order_by(n.deleted_at.desc(), n.id.desc())
                .limit(MAX_PAGE)
            )
            items = [{**crm.note_view(r), **self._trashed(r.deleted_at)} for r in rows]
        return {"items": items}

    async def restore_note(self, actor: str, note_id: int) -> dict[str, Any]:
        now = self._now()
        async with self.runtime.db.begin() as conn:
            row = (await conn.execute(select(crm_notes).where(crm_notes.c.id == note_id))).first()
            if row is None:
                raise ApiError(404, "not_found", "no such note", {"note_id": note_id})
            if row.deleted_at is None:
                raise not_deleted("note")
            check_restorable(row.deleted_at, now, self.days)
            live = await conn.scalar(
                select(crm_contacts.c.id).where(
                    crm_contacts.c.id == row.contact_id, crm_contacts.c.deleted_at.is_(None)
                )
            )
            if live is None:
                raise ApiError(
                    409,
                    "contact_deleted",
                    "the note's contact is deleted: restore the contact first",
                    {"contact_id": int(row.contact_id)},
                )
            result = await conn.execute(
                update(crm_notes)
                .where(crm_notes.c.id == note_id, crm_notes.c.deleted_at == row.deleted_at)
                .values(deleted_at=None)
            )
            if result.rowcount != 1:
                raise not_deleted("note")
            await record_audit(
                conn,
                actor=actor,
                action="crm.note.restore",
                subject=f"contact:{row.contact_id}",
                details={"note": note_id, "deleted_at": row.deleted_at.isoformat()},
                ts=now,
            )
            found = (await conn.execute(select(crm_notes).where(crm_notes.c.id == note_id))).one()
            return crm.note_view(found)
