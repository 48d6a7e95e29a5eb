"""Request and response models of the CRM trash (``service/whatsapp/crm_trash.py``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from service.whatsapp import cursor
from service.whatsapp.crm_schemas import ContactOut, NoteOut, Strict
from service.whatsapp.crm_trash import DEFAULT_PAGE, MAX_PAGE

RESTORABLE = "Until when it can be restored; later it is purged for good"


class TrashedContactQuery(Strict):
    limit: int = Field(default=DEFAULT_PAGE, ge=1, le=MAX_PAGE)
    cursor: str | SkipJsonSchema[None] = Field(
        default=None,
        max_length=cursor.MAX_LENGTH,
        description="next_cursor of the previous page (empty: the first page); any other "
        "string is refused with 400 invalid_cursor",
        # Checked by the cursor's decoder (400), not here (422), with the same pattern.
        json_schema_extra={"pattern": cursor.PATTERN},
    )


class TrashedContactOut(ContactOut):
    deleted_at: datetime
    restorable_until: datetime = Field(description=RESTORABLE)


class TrashedContactPageOut(BaseModel):
    items: list[TrashedContactOut]
    next_cursor: str | None


class TrashedNoteOut(NoteOut):
    deleted_at: datetime
    restorable_until: datetime = Field(description=RESTORABLE)


class TrashedNoteListOut(BaseModel):
    items: list[TrashedNoteOut]
