"""Request and response models of the CRM admin API (they also feed /openapi.json).

Each model states what the code enforces: path ids are validated against the very models that
document them, the send body's "exactly one of text or template" is a ``oneOf``, stored JSON
says which integers it holds, and the rules a schema cannot state (one field against another,
nesting depth) are listed with ``validation_rules`` in words their 422 refusals quote.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from typing_extensions import TypeAliasType

from core.json_depth import MAX_STORED_DEPTH, json_depth
from core.whatsapp.texts import TEXT_MAX_CHARS
from service.openapi import validation_rules
from service.whatsapp import cursor
from service.whatsapp.crm import MAX_PAGE, ONE_DIRECTION, PREVIEW_CHARS
from service.whatsapp.send_rules import MARKETING_ROOM

MAX_ID = cursor.MAX_ID
MAX_ID_DIGITS = len(str(MAX_ID))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _decimal(value: object) -> object:
    # A path id is plain ASCII digits: "1e3", "+7", " 7", "1_0" or "١٢" name nothing, although
    # int() (and pydantic's lax mode) would read them.
    if isinstance(value, str) and not (
        value.isascii() and value.isdigit() and len(value) <= MAX_ID_DIGITS
    ):
        raise ValueError("not a decimal id")
    return value


PathId = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(_decimal)]


class ConvoPath(Strict):
    convo_id: PathId


class ContactPath(Strict):
    contact_id: PathId


class NotePath(Strict):
    note_id: PathId


class EventPath(Strict):
    event_id: PathId


def _without_default(schema: dict[str, Any]) -> None:
    # The field may be left out but not sent as null, so "default: null" would mislead.
    schema.pop("default", None)


class ConvoQuery(Strict):
    status: Literal["open", "closed"] | None = None
    channel: Literal["whatsapp", "email"] | None = None
    unread: bool | None = None
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    cursor: str | None = Field(
        default=None,
        max_length=cursor.MAX_LENGTH,
        description="next_cursor of the previous page (empty: the first page); any other "
        "string is refused with 400 invalid_cursor",
        # Checked by the cursor's decoder (400), not here (422), with the same pattern.
        json_schema_extra={"pattern": cursor.PATTERN},
    )


class MessageQuery(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=validation_rules(ONE_DIRECTION))

    before: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        description="Messages older than this id (prev_cursor)",
    )
    after: int | None = Field(
        default=None,
        ge=0,
        le=MAX_ID,
        description="Messages newer than this id (next_cursor)",
    )
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)


def _not_an_integer(value: object) -> object:
    # Integers are the other branch's; one that did not fit there must not become a float.
    if isinstance(value, int):
        raise ValueError("an integer outside the 64-bit range")
    return value


#: What orjson (storage, the send job) can write: integers within 64 bits, any fraction.
Int64 = Annotated[StrictInt, Field(ge=-(2**63), le=2**64 - 1)]
Fraction = Annotated[
    float,
    BeforeValidator(_not_an_integer),
    WithJsonSchema({"type": "number", "not": {"type": "integer"}}),
]
#: A JSON value as it can be stored with a message.
StoredJson = TypeAliasType(
    "StoredJson",
    "StrictBool | Int64 | Fraction | StrictStr | list[StoredJson] | dict[str, StoredJson] | None",
)


#: Nesting is counted by the code alone: a JSON Schema cannot state it.
NESTING_RULE = f"components nest at most {MAX_STORED_DEPTH} levels deep"


class TemplateIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=validation_rules(NESTING_RULE))

    name: str = Field(min_length=1, max_length=512, pattern=r"^[a-z0-9_]+$")
    language: str = Field(min_length=2, max_length=15, pattern=r"^[A-Za-z]{2,3}(_[A-Za-z]{2,4})?$")
    components: list[dict[str, StoredJson]] = Field(
        default_factory=list,
        max_length=20,
        description="Graph API template components, stored with the message (their nesting "
        "counts this array as one level)",
    )

    @field_validator("components", mode="before")
    @classmethod
    def storable(cls, components: Any) -> Any:
        # Before the typed check, so that a too deep value never recurses through it, and the
        # two refusals name the rule rather than a union branch.
        # Stored in the message's JSON payload, which MariaDB refuses past 32 levels.
        if json_depth(components) > MAX_STORED_DEPTH:
            raise ValueError(NESTING_RULE)
        try:
            # What storage and the send job do with them: orjson has no integers beyond 64 bits.
            orjson.dumps(components)
        except orjson.JSONEncodeError:
            raise ValueError("components hold a number outside the 64-bit range") from None
        return components


#: Exactly one of ``text`` and ``template`` is given (the other left out or null).
_ONE_KIND: dict[str, Any] = {
    "oneOf": [
        {
            "required": ["text"],
            "properties": {"text": {"type": "string"}, "template": {"type": "null"}},
        },
        {
            "required": ["template"],
            "properties": {"template": {"type": "object"}, "text": {"type": "null"}},
        },
    ]
}


class SendIn(Strict):
    """A free text (only within 24 hours of the customer's last message, else 409
    template_required) or an approved template, to a conversation whose contact holds
    WhatsApp consent (else 403)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={**_ONE_KIND, **validation_rules(MARKETING_ROOM)}
    )

    convo_id: int = Field(ge=1, le=MAX_ID)
    text: str | None = Field(default=None, min_length=1, max_length=TEXT_MAX_CHARS)
    template: TemplateIn | None = None
    marketing: bool = Field(
        default=False,
        description="Adds the unsubscribe line in the contact's language to a text",
    )

    @model_validator(mode="after")
    def one_kind(self) -> SendIn:
        if (self.text is None) == (self.template is None):
            raise ValueError("give exactly one of text or template")
        return self


# Unicode's White_Space spelled out: what \s means to pydantic's regex engine, while to a JSON
# Schema (ECMAScript) reader \s is a different set, so the document could not say it exactly.
_SPACE = r"\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
EMAIL_PATTERN = rf"^[^@{_SPACE}]+@[^@{_SPACE}]+\.[^@{_SPACE}]+$"


class ContactPatch(Strict):
    """Only the fields given change; email and phone may be cleared with null."""

    name: Annotated[str, Field(min_length=1, max_length=191)] | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=_without_default
    )
    email: str | None = Field(default=None, max_length=191, pattern=EMAIL_PATTERN)
    phone: str | None = Field(default=None, min_length=3, max_length=32, pattern=r"^\+?[0-9 ()-]+$")
    locale: Literal["tr", "de", "en"] | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=_without_default
    )


class NoteIn(Strict):
    body: str = Field(min_length=1, max_length=10_000)


class SearchQuery(Strict):
    q: str = Field(min_length=1, max_length=100)
    limit: int = Field(default=20, ge=1, le=100)


# Responses.


class NoteOut(BaseModel):
    id: int
    contact_id: int
    body: str
    created_by: str
    created_at: datetime


class NoteListOut(BaseModel):
    items: list[NoteOut]


class ContactOut(BaseModel):
    id: int
    name: str | None
    email: str | None
    phone: str | None
    wa_id: str | None
    locale: str
    created_at: datetime
    updated_at: datetime


class ContactListOut(BaseModel):
    items: list[ContactOut]


class ContactCardOut(ContactOut):
    whatsapp_consent: bool
    notes: list[NoteOut] = Field(description="Newest first")


class ConvoOut(BaseModel):
    id: int
    contact_id: int
    contact_name: str | None
    channel: Literal["whatsapp", "email"]
    status: Literal["open", "closed"]
    unread: int
    meta: Any
    created_at: datetime
    last_inbound_at: datetime | None
    last_activity_at: datetime
    window_open: bool = Field(description="Free text may be sent (24-hour service window)")
    window_closes_at: datetime | None


class LastMessageOut(BaseModel):
    direction: Literal["in", "out"]
    kind: str
    body: str | None = Field(description=f"The first {PREVIEW_CHARS} characters")
    status: str
    created_at: datetime


class ConvoItemOut(ConvoOut):
    last_message: LastMessageOut | None


class ConvoPageOut(BaseModel):
    items: list[ConvoItemOut]
    has_more: bool
    next_cursor: str | None


class ConvoCardOut(BaseModel):
    convo: ConvoOut
    contact: ContactCardOut


class MessageOut(BaseModel):
    id: int
    convo_id: int
    direction: Literal["in", "out"]
    kind: str
    body: str | None
    payload: Any
    provider_id: str | None
    reply_to: str | None
    status: Literal["received", "queued", "sent", "delivered", "read", "failed"]
    created_at: datetime
    queued_at: datetime | None
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    failed_at: datetime | None
    error: Any
    created_by: str | None
    marketing: bool


class MessagePageOut(BaseModel):
    items: list[MessageOut] = Field(description="Oldest first")
    has_more: bool
    prev_cursor: int | None = Field(description="Use as before: older messages exist")
    next_cursor: int | None = Field(description="Use as after: newer messages exist")


class ReadOut(BaseModel):
    convo_id: int
    unread: int
    receipt_queued: bool
    receipt_skipped: (
        Literal["not_whatsapp", "no_inbound_message", "whatsapp_not_configured", "no_queue"] | None
    ) = Field(
        description="Why no read receipt was queued: the conversation is not on WhatsApp, it "
        "has no inbound message, WhatsApp sending is not configured "
        "(KERVAN_WHATSAPP_ACCESS_TOKEN and KERVAN_WHATSAPP_PHONE_NUMBER_ID), or no queue "
        "runs; null when one was queued"
    )


class ReplayOut(BaseModel):
    event_id: int
    messages: int
    duplicates: int
    statuses: int
