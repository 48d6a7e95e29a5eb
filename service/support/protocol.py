"""The ``/ws/support`` protocol: one JSON object per frame, ``{"type": ..., ...}``.

Client frames are validated by the models in ``CLIENT_MESSAGES``; server frames are built with
``frame()``, which refuses a type missing from ``SERVER_MESSAGES``. Both tables are what the
AsyncAPI document (``service/support/asyncapi.py``) is generated from, so the document cannot
omit a message either side uses.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

from service.support.protocol_rtc import (
    RTC_ADMIN_ONLY,
    RTC_CLIENT_MESSAGES,
    RTC_SERVER_MESSAGES,
    CallId,
    CallPosition,
    RtcAck,
    SignalMessage,
)

ClientId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
RoomId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,80}$")]
Language = Literal["tr", "de", "en"]
PresenceStatus = Literal["online", "busy", "away"]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: ASCII control characters (all of ASCII's Cc); ASCII has no other refused category.
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ASCII_CONTROL_BUT_NEWLINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_text(value: str, *, allow_newlines: bool) -> str:
    """Strip, refuse control and format characters (bidi overrides), keep newlines in chats."""
    value = value.strip()
    if value.isascii():
        # The common case without a Python loop over the characters.
        control = _ASCII_CONTROL_BUT_NEWLINES if allow_newlines else _ASCII_CONTROL
        if control.search(value) is not None:
            raise ValueError("must not contain control or invisible formatting characters")
        return value
    for char in value:
        category = unicodedata.category(char)
        if char in "\n\t" and allow_newlines:
            continue
        if category in ("Cc", "Cf", "Cs", "Co", "Cn"):
            raise ValueError("must not contain control or invisible formatting characters")
    return value


def _one_line(value: str) -> str:
    cleaned = clean_text(value, allow_newlines=False)
    if not cleaned:
        raise ValueError("must not be blank")
    return cleaned


def _block(value: str) -> str:
    cleaned = clean_text(value, allow_newlines=True)
    if not cleaned:
        raise ValueError("must not be blank")
    return cleaned


#: A display name: one line, no control or invisible formatting characters, not blank.
NameText = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_one_line)]
#: A message body: newlines allowed, otherwise as ``NameText``. The settings may lower the
#: maximum (``KERVAN_SUPPORT_MESSAGE_MAX_LENGTH``); the served document states the lower one.
MessageText = Annotated[str, Field(min_length=1, max_length=65_536), AfterValidator(_block)]


# --- client -> server ----------------------------------------------------------------------


class RoomPosition(_Message):
    epoch: str = Field(min_length=1, max_length=64)
    offset: int = Field(ge=0)


class Hello(_Message):
    """The first frame of every connection."""

    type: Literal["hello"]
    role: Literal["customer", "admin"]
    name: NameText | None = None
    language: Language | None = None
    #: A customer's resume token from an earlier ``welcome``.
    resume: str | None = Field(default=None, min_length=16, max_length=128)
    #: An admin's session token, for clients without the session cookie.
    token: str | None = Field(default=None, min_length=16, max_length=256)
    #: The last offset the client delivered in each room it was in.
    rooms: dict[RoomId, RoomPosition] = Field(default_factory=dict, max_length=16)
    #: The calls the client was in and the last ``seq`` it delivered in each (a resume).
    calls: dict[CallId, CallPosition] = Field(default_factory=dict, max_length=4)


class Ping(_Message):
    type: Literal["ping"]


class Pong(_Message):
    type: Literal["pong"]


class QueueJoin(_Message):
    type: Literal["queue:join"]


class QueueLeave(_Message):
    type: Literal["queue:leave"]


class ChatSend(_Message):
    type: Literal["chat:send"]
    room: RoomId
    client_id: ClientId
    text: MessageText


class Typing(_Message):
    type: Literal["typing"]
    room: RoomId
    active: bool


class PresenceSet(_Message):
    """An admin's own status: ``online`` takes customers, ``busy``/``away`` do not."""

    type: Literal["presence:set"]
    status: PresenceStatus


class ChatEnd(_Message):
    type: Literal["chat:end"]
    room: RoomId
    reason: Literal["resolved", "left", "other"] = "resolved"


class HistoryFetch(_Message):
    type: Literal["history:fetch"]
    room: RoomId
    before: str | None = Field(
        default=None,
        pattern=r"^[0-9]{1,20}\.[0-9]{1,20}$",
        description="`next_before` of an earlier `history:page`; absent: the newest page.",
    )
    limit: int = Field(default=50, ge=1, le=200)


class MessageLeave(_Message):
    """Leave a message instead of waiting (stored as a CRM conversation, channel ``web``)."""

    type: Literal["message:leave"]
    text: MessageText
    email: str | None = Field(default=None, max_length=191, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str | None = Field(default=None, pattern=r"^\+[1-9][0-9]{6,14}$")


class CallbackRequest(_Message):
    """Ask to be called back on WhatsApp; needs the visitor's granted WhatsApp consent."""

    type: Literal["callback:request"]
    phone: str = Field(pattern=r"^\+[1-9][0-9]{6,14}$")
    consent_subject: str | None = Field(default=None, max_length=200)


def _by_type(*models: type[BaseModel]) -> dict[str, type[BaseModel]]:
    return {
        model.model_fields["type"].annotation.__args__[0]: model  # type: ignore[union-attr]
        for model in models
    }


CLIENT_MESSAGES: dict[str, type[BaseModel]] = _by_type(
    *RTC_CLIENT_MESSAGES,
    Hello,
    Ping,
    Pong,
    QueueJoin,
    QueueLeave,
    ChatSend,
    Typing,
    PresenceSet,
    ChatEnd,
    HistoryFetch,
    MessageLeave,
    CallbackRequest,
)
ADMIN_ONLY = frozenset({"presence:set", *RTC_ADMIN_ONLY})
CUSTOMER_ONLY = frozenset({"queue:join", "queue:leave", "message:leave", "callback:request"})

ClientMessage = (
    Hello
    | Ping
    | Pong
    | QueueJoin
    | QueueLeave
    | ChatSend
    | Typing
    | PresenceSet
    | ChatEnd
    | HistoryFetch
    | MessageLeave
    | CallbackRequest
    | SignalMessage
    | RtcAck
)
_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    name: TypeAdapter(model) for name, model in CLIENT_MESSAGES.items()
}


class ProtocolError(Exception):
    """A frame the server cannot take; answered with an ``error`` frame, never a drop."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


def parse_client_frame(raw: str | bytes) -> ClientMessage:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError("invalid_json", f"the frame is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("invalid_frame", "a frame must be a JSON object with a `type`")
    kind = data.get("type")
    adapter = _ADAPTERS.get(kind) if isinstance(kind, str) else None
    if adapter is None:
        raise ProtocolError(
            "unknown_type",
            f"unknown message type {kind!r}",
            {"known": sorted(CLIENT_MESSAGES)},
        )
    from pydantic import ValidationError

    try:
        message: ClientMessage = adapter.validate_python(data)
    except ValidationError as exc:
        raise ProtocolError(
            "validation_failed",
            f"`{kind}` frame is not valid",
            [
                {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_url=False, include_context=False, include_input=False)
            ],
        ) from None
    return message


# --- server -> client ----------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Welcome(_Out):
    type: Literal["welcome"]
    person: str
    role: Literal["customer", "admin"]
    name: str
    language: Language
    resume: str | None = Field(description="Customers: the token to resume with after a drop.")
    heartbeat: float = Field(description="Seconds between server pings.")
    queue_enabled: bool


class Reconnect(_Out):
    """This process is going away: reconnect (to any process) and resume.

    Sent before a close with 1012 (service restart) while the server drains; also the answer to
    a connection opened during the drain. Wait ``retry_after_ms``, then connect again with a
    ``hello`` naming the resume token and the last offset of each room: nothing is lost."""

    type: Literal["reconnect"]
    reason: Literal["shutdown"]
    retry_after_ms: int = Field(
        ge=0, description="Milliseconds to wait before reconnecting (jittered per client)."
    )


class ServerPing(_Out):
    type: Literal["ping"]


class ServerPong(_Out):
    type: Literal["pong"]


class ErrorFrame(_Out):
    type: Literal["error"]
    code: str
    message: str
    details: Any = None


class EtaFields(_Out):
    position: int = Field(ge=1)
    eta_seconds: float = Field(ge=0)
    eta_low: float = Field(ge=0)
    eta_high: float = Field(ge=0)


class QueueJoined(EtaFields):
    type: Literal["queue:joined"]


class QueuePosition(EtaFields):
    type: Literal["queue:position"]


class QueueReady(_Out):
    type: Literal["queue:ready"]
    room: str
    admin: str
    admin_name: str


class QueueRefused(_Out):
    type: Literal["queue:refused"]
    reason: Literal["full", "all_busy", "unavailable"]
    message: str
    eta_seconds: float | None = None


class QueueTimeout(_Out):
    type: Literal["queue:timeout"]
    message: str
    options: list[Literal["message:leave", "callback:request"]]


class QueueLeft(_Out):
    type: Literal["queue:left"]
    reason: Literal["left", "timeout", "grace_expired"]


class Peer(_Out):
    id: str
    name: str
    role: Literal["customer", "admin"]


class RoomJoined(_Out):
    type: Literal["room:joined"]
    room: str
    epoch: str
    offset: int = Field(ge=0, description="The room's newest offset when joined.")
    peer: Peer


class RoomClosed(_Out):
    type: Literal["room:closed"]
    room: str
    reason: str


class Resume(_Out):
    """First frame after a resume for each room the client named."""

    type: Literal["resume"]
    room: str
    recovered: bool
    epoch: str
    last_offset: int = Field(ge=0)
    history_before: str | None = Field(
        default=None,
        description="When not recovered: where `history:fetch` starts (`before`); null: "
        "fetch without `before`, the newest page of the stored history.",
    )


class ChatAck(_Out):
    """The message's place in the room; the sending connection gets no `chat:message` of it."""

    type: Literal["chat:ack"]
    client_id: str
    room: str
    epoch: str
    offset: int = Field(ge=1, description="Counts as received by the sending connection.")
    duplicate: bool


class ChatMessage(_Out):
    type: Literal["chat:message"]
    room: str
    epoch: str
    offset: int = Field(ge=1)
    sender: str
    role: Literal["customer", "admin"]
    name: str
    text: str
    client_id: str
    at: float


class TypingOut(_Out):
    type: Literal["typing"]
    room: str
    sender: str
    active: bool


class PresenceOut(_Out):
    type: Literal["presence"]
    admins: dict[str, PresenceStatus] = Field(description="Admin id -> status (admins only).")
    available: int = Field(ge=0, description="Admins online and free.")
    online: int = Field(ge=0, description="Admins connected.")


class DeskCustomer(_Out):
    customer: str
    name: str
    waited_seconds: float = Field(ge=0)


class DeskServing(_Out):
    customer: str
    name: str
    room: str
    talk_seconds: float = Field(ge=0)


class DeskState(_Out):
    """An admin's view: the customer served, the talk time and the waiting list."""

    type: Literal["desk:state"]
    serving: DeskServing | None
    waiting: list[DeskCustomer]


class HistoryMessage(_Out):
    id: int
    direction: Literal["in", "out"]
    text: str | None
    at: str
    sender: str | None


class HistoryPage(_Out):
    type: Literal["history:page"]
    room: str
    messages: list[HistoryMessage]
    next_before: str | None


class MessageStored(_Out):
    type: Literal["message:stored"]
    conversation: int
    message: str


class CallbackStored(_Out):
    type: Literal["callback:stored"]
    conversation: int
    message: str


SERVER_MESSAGES: dict[str, type[BaseModel]] = _by_type(
    *RTC_SERVER_MESSAGES,
    Welcome,
    ServerPing,
    ServerPong,
    ErrorFrame,
    Reconnect,
    QueueJoined,
    QueuePosition,
    QueueReady,
    QueueRefused,
    QueueTimeout,
    QueueLeft,
    RoomJoined,
    RoomClosed,
    Resume,
    ChatAck,
    ChatMessage,
    TypingOut,
    PresenceOut,
    DeskState,
    HistoryPage,
    MessageStored,
    CallbackStored,
)


def frame(kind: str, **fields: Any) -> bytes:
    """A server frame as JSON bytes; the type must be one the AsyncAPI document describes."""
    if kind not in SERVER_MESSAGES:
        raise KeyError(f"server message type {kind!r} is not in the protocol")
    return orjson.dumps({"type": kind, **fields})


def error_frame(code: str, message: str, details: Any = None) -> bytes:
    return frame("error", code=code, message=message, details=details)
