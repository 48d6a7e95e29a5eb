# ruff: noqa: RUF001  (Turkish text legitimately contains the dotless i)
"""WhatsApp Cloud API webhook payloads in the exact shapes Meta documents and sends."""

from __future__ import annotations

from typing import Any

PHONE_NUMBER_ID = "106540352242922"
DISPLAY_NUMBER = "15550783881"
WABA_ID = "102290129340398"


def envelope(*values: dict[str, Any], entries: int = 1) -> dict[str, Any]:
    """One notification; ``values`` are spread over ``entries`` entries, one change each."""
    entry_list: list[dict[str, Any]] = [
        {"id": WABA_ID, "changes": []} for _ in range(max(entries, 1))
    ]
    for index, value in enumerate(values):
        entry_list[index % len(entry_list)]["changes"].append({"value": value, "field": "messages"})
    return {"object": "whatsapp_business_account", "entry": entry_list}


def value(
    *,
    messages: list[Any] | None = None,
    statuses: list[Any] | None = None,
    contacts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": PHONE_NUMBER_ID},
    }
    if contacts is not None:
        data["contacts"] = contacts
    if messages is not None:
        data["messages"] = messages
    if statuses is not None:
        data["statuses"] = statuses
    return data


def contact(wa_id: str, name: str) -> dict[str, Any]:
    return {"profile": {"name": name}, "wa_id": wa_id}


def message(
    wa_id: str, msg_id: str, kind: str, content: Any, *, ts: int = 1_700_000_100, **extra: Any
) -> dict[str, Any]:
    data: dict[str, Any] = {"from": wa_id, "id": msg_id, "timestamp": str(ts), "type": kind}
    if content is not None:
        data[kind] = content
    data.update(extra)
    return data


def text(wa_id: str, msg_id: str, body: str, **extra: Any) -> dict[str, Any]:
    return message(wa_id, msg_id, "text", {"body": body}, **extra)


def inbound(wa_id: str, name: str, *msgs: dict[str, Any]) -> dict[str, Any]:
    return envelope(value(contacts=[contact(wa_id, name)], messages=list(msgs)))


def status(
    msg_id: str,
    state: str,
    *,
    ts: int = 1_700_000_200,
    recipient: str = "905321234567",
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": msg_id,
        "status": state,
        "timestamp": str(ts),
        "recipient_id": recipient,
    }
    if state in ("sent", "delivered"):
        data["conversation"] = {
            "id": "CONVERSATION_ID",
            "origin": {"type": "service"},
        }
        data["pricing"] = {"billable": True, "pricing_model": "CBP", "category": "service"}
    if errors is not None:
        data["errors"] = errors
    return data


def statuses(*items: dict[str, Any]) -> dict[str, Any]:
    return envelope(value(statuses=list(items)))


RE_ENGAGEMENT_ERROR = {
    "code": 131047,
    "title": "Re-engagement message",
    "message": "Re-engagement message",
    "error_data": {
        "details": "Message failed to send because more than 24 hours have passed since the "
        "customer last replied to this number."
    },
    "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
}

#: One of every message type, as documented (ids are unique within this list).
ALL_TYPES: list[dict[str, Any]] = [
    text("905321234567", "wamid.T1", "Merhaba, siparişim nerede?"),
    message(
        "905321234567",
        "wamid.I1",
        "image",
        {"caption": "fatura", "mime_type": "image/jpeg", "sha256": "abc=", "id": "1234567"},
    ),
    message(
        "905321234567",
        "wamid.A1",
        "audio",
        {"mime_type": "audio/ogg; codecs=opus", "sha256": "def=", "id": "2345678", "voice": True},
    ),
    message(
        "905321234567",
        "wamid.V1",
        "video",
        {"mime_type": "video/mp4", "sha256": "ghi=", "id": "3456789"},
    ),
    message(
        "905321234567",
        "wamid.D1",
        "document",
        {
            "caption": "sözleşme",
            "filename": "contract.pdf",
            "mime_type": "application/pdf",
            "sha256": "jkl=",
            "id": "4567890",
        },
    ),
    message(
        "905321234567",
        "wamid.S1",
        "sticker",
        {"mime_type": "image/webp", "sha256": "mno=", "id": "5678901", "animated": False},
    ),
    message(
        "905321234567",
        "wamid.L1",
        "location",
        {"latitude": 41.0082, "longitude": 28.9784, "name": "Mağaza", "address": "İstanbul"},
    ),
    message(
        "905321234567",
        "wamid.C1",
        "contacts",
        [
            {
                "name": {"formatted_name": "Ayşe Yılmaz", "first_name": "Ayşe"},
                "phones": [{"phone": "+90 532 000 00 00", "type": "CELL", "wa_id": "905320000000"}],
            }
        ],
    ),
    message(
        "905321234567",
        "wamid.B1",
        "interactive",
        {"type": "button_reply", "button_reply": {"id": "yes-1", "title": "Evet"}},
    ),
    message(
        "905321234567",
        "wamid.LR1",
        "interactive",
        {
            "type": "list_reply",
            "list_reply": {"id": "opt-2", "title": "Kargo", "description": "Kargo durumu"},
        },
    ),
    message(
        "905321234567",
        "wamid.R1",
        "reaction",
        {"message_id": "wamid.OUT1", "emoji": "\U0001f44d"},
    ),
    {
        "from": "905321234567",
        "id": "wamid.U1",
        "timestamp": "1700000100",
        "type": "unsupported",
        "errors": [
            {
                "code": 131051,
                "title": "Message type unknown",
                "message": "Message type unknown",
                "error_data": {"details": "Message type is currently not supported."},
            }
        ],
    },
    message("905321234567", "wamid.X1", "hologram", {"frames": 3}),
]
