"""Turns a WhatsApp Cloud API webhook payload (already JSON-decoded) into typed events.

The parser is total: for any JSON value it either raises :class:`InvalidPayload` (the envelope is
not a WhatsApp business account notification) or returns a :class:`WebhookBatch`. Malformed parts
inside a valid envelope are skipped and described in ``batch.issues`` rather than failing the
whole delivery, because Meta would otherwise redeliver the good parts forever.
"""

from __future__ import annotations

from typing import Any

from core.errors import ValidationFailed
from core.json_depth import MAX_STORED_DEPTH, json_depth, trim_depth
from core.whatsapp.events import (
    KNOWN_MESSAGE_TYPES,
    InboundMessage,
    ProviderErrorInfo,
    StatusEvent,
    StatusName,
    WebhookBatch,
)

WEBHOOK_OBJECT = "whatsapp_business_account"
#: Provider ids are unique-indexed; MariaDB indexes VARCHAR(191) in utf8mb4.
MAX_PROVIDER_ID = 191
MAX_WA_ID = 64
MAX_NAME = 191
MAX_TIMESTAMP = 2**33
_STATUSES: frozenset[str] = frozenset({"sent", "delivered", "read", "failed"})


class InvalidPayload(ValidationFailed):
    """The JSON is not a WhatsApp business account webhook notification."""

    code = "invalid_payload"


def _text(value: Any, limit: int | None = None) -> str | None:
    if not isinstance(value, str):
        return None
    return value if limit is None else value[:limit]


def _dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _timestamp(value: Any) -> int | None:
    """WhatsApp sends epoch seconds as a decimal string; tolerate ints, refuse the rest."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 12:
        number = int(value)
    else:
        return None
    return number if 0 < number < MAX_TIMESTAMP else None


def _identifier(value: Any, limit: int) -> str | None:
    if not isinstance(value, str):
        return None
    text: str = value.strip()
    if not text or len(text) > limit:
        return None
    return text


def parse_errors(value: Any) -> tuple[ProviderErrorInfo, ...]:
    errors = []
    for item in _list(value):
        error = _dict(item)
        if error is None:
            continue
        code = error.get("code")
        data = _dict(error.get("error_data")) or {}
        errors.append(
            ProviderErrorInfo(
                code=code if isinstance(code, int) and not isinstance(code, bool) else None,
                title=_text(error.get("title"), 500),
                message=_text(error.get("message"), 1000),
                details=_text(data.get("details"), 2000),
            )
        )
    return tuple(errors)


def _body_of(kind: str, content: dict[str, Any]) -> str | None:
    if kind == "text":
        return _text(content.get("body"))
    if kind in ("image", "video", "document"):
        return _text(content.get("caption"))
    if kind == "interactive":
        reply = _dict(content.get("button_reply")) or _dict(content.get("list_reply")) or {}
        return _text(reply.get("title"))
    if kind == "button":
        return _text(content.get("text"))
    if kind == "reaction":
        return _text(content.get("emoji"))
    if kind == "location":
        return _text(content.get("name")) or _text(content.get("address"))
    if kind == "system":
        return _text(content.get("body"))
    return None


def _content_of(raw_type: str, message: dict[str, Any]) -> dict[str, Any]:
    value = message.get(raw_type)
    if isinstance(value, dict):
        return value
    if isinstance(value, list):  # ``contacts`` messages carry an array
        return {"items": value}
    return {}


def _storable(
    value: dict[str, Any] | None, name: str, where: str, issues: list[str]
) -> dict[str, Any] | None:
    """``value`` trimmed to a nesting its JSON column accepts (MariaDB refuses 32 levels);
    the raw delivery keeps the original."""
    if value is None or json_depth(value) <= MAX_STORED_DEPTH:
        return value
    issues.append(f"{where}: {name} nested deeper than {MAX_STORED_DEPTH} levels was trimmed")
    trimmed: dict[str, Any] = trim_depth(value, MAX_STORED_DEPTH)
    return trimmed


def _parse_message(
    message: dict[str, Any],
    profiles: dict[str, str | None],
    phone_number_id: str | None,
    where: str,
    issues: list[str],
) -> InboundMessage | None:
    provider_id = _identifier(message.get("id"), MAX_PROVIDER_ID)
    wa_id = _identifier(message.get("from"), MAX_WA_ID)
    if provider_id is None or wa_id is None:
        issues.append(f"{where}: message without a usable id/from skipped")
        return None
    raw_type = _text(message.get("type"), 64) or "unknown"
    kind = raw_type if raw_type in KNOWN_MESSAGE_TYPES else "unknown"
    content = _storable(_content_of(raw_type, message), "content", where, issues) or {}
    context = _storable(_dict(message.get("context")), "context", where, issues)
    reply_to = _identifier(context.get("id"), MAX_PROVIDER_ID) if context else None
    return InboundMessage(
        provider_id=provider_id,
        wa_id=wa_id,
        kind=kind,
        timestamp=_timestamp(message.get("timestamp")),
        body=_body_of(kind, content),
        content=content,
        reply_to=reply_to,
        context=context,
        referral=_storable(_dict(message.get("referral")), "referral", where, issues),
        profile_name=profiles.get(wa_id),
        phone_number_id=phone_number_id,
        raw_type=raw_type,
        errors=parse_errors(message.get("errors")),
    )


def _parse_status(status: dict[str, Any], where: str, issues: list[str]) -> StatusEvent | None:
    provider_id = _identifier(status.get("id"), MAX_PROVIDER_ID)
    name = status.get("status")
    if provider_id is None or not isinstance(name, str) or name not in _STATUSES:
        issues.append(f"{where}: status without a usable id/status skipped")
        return None
    state: StatusName = name  # type: ignore[assignment]  # membership checked above
    return StatusEvent(
        provider_id=provider_id,
        status=state,
        timestamp=_timestamp(status.get("timestamp")),
        recipient_id=_identifier(status.get("recipient_id"), MAX_WA_ID),
        errors=parse_errors(status.get("errors")),
    )


def _parse_value(value: dict[str, Any], where: str, batch: WebhookBatch) -> None:
    metadata = _dict(value.get("metadata")) or {}
    phone_number_id = _identifier(metadata.get("phone_number_id"), MAX_WA_ID)
    profiles: dict[str, str | None] = {}
    for contact in _list(value.get("contacts")):
        contact = _dict(contact)
        wa_id = _identifier(contact.get("wa_id"), MAX_WA_ID) if contact else None
        if contact is None or wa_id is None:
            continue
        profile = _dict(contact.get("profile")) or {}
        profiles[wa_id] = _text(profile.get("name"), MAX_NAME)
    batch.profiles.update(profiles)
    for index, message in enumerate(_list(value.get("messages"))):
        message = _dict(message)
        spot = f"{where}.messages[{index}]"
        if message is None:
            batch.issues.append(f"{spot}: not an object")
            continue
        parsed = _parse_message(message, profiles, phone_number_id, spot, batch.issues)
        if parsed is not None:
            batch.messages.append(parsed)
    for index, status in enumerate(_list(value.get("statuses"))):
        status = _dict(status)
        spot = f"{where}.statuses[{index}]"
        if status is None:
            batch.issues.append(f"{spot}: not an object")
            continue
        parsed_status = _parse_status(status, spot, batch.issues)
        if parsed_status is not None:
            batch.statuses.append(parsed_status)
    batch.errors.extend(parse_errors(value.get("errors")))


def parse_webhook(payload: Any) -> WebhookBatch:
    """Every message and status of every entry and change, in payload order."""
    envelope = _dict(payload)
    if envelope is None or envelope.get("object") != WEBHOOK_OBJECT:
        raise InvalidPayload(f"not a {WEBHOOK_OBJECT} notification")
    entries = envelope.get("entry")
    if not isinstance(entries, list):
        raise InvalidPayload("'entry' must be an array")
    batch = WebhookBatch()
    for entry_index, entry in enumerate(entries):
        entry = _dict(entry)
        if entry is None:
            batch.issues.append(f"entry[{entry_index}]: not an object")
            continue
        for change_index, change in enumerate(_list(entry.get("changes"))):
            change = _dict(change)
            where = f"entry[{entry_index}].changes[{change_index}]"
            if change is None:
                batch.issues.append(f"{where}: not an object")
                continue
            value = _dict(change.get("value"))
            if change.get("field") != "messages" or value is None:
                # Other fields (template status, account updates) are kept in the raw log only.
                continue
            _parse_value(value, where, batch)
    return batch
