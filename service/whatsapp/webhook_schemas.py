"""Models of the WhatsApp webhook and of the unsubscribe link (they feed /openapi.json)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from core.whatsapp.parse import WEBHOOK_OBJECT
from core.whatsapp.unsubscribe import MAX_TOKEN_LENGTH, TOKEN_PATTERN

_EXAMPLE_NOTIFICATION: dict[str, Any] = {
    "object": WEBHOOK_OBJECT,
    "entry": [
        {
            "id": "102290129340398",
            "changes": [
                {
                    "field": "messages",
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "15550783881",
                            "phone_number_id": "106540352242922",
                        },
                        "contacts": [{"profile": {"name": "Ayla"}, "wa_id": "905321234567"}],
                        "messages": [
                            {
                                "from": "905321234567",
                                "id": "wamid.HBgMOTA1MzIxMjM0NTY3FQIAEhgg",
                                "timestamp": "1700000100",
                                "type": "text",
                                "text": {"body": "Merhaba"},
                            }
                        ],
                    },
                }
            ],
        }
    ],
}


class VerifyQuery(BaseModel):
    """The handshake Meta sends when the webhook is registered (the handler reads the raw
    parameters: a wrong mode or token is 403, a missing challenge 400)."""

    mode: Literal["subscribe"] = Field(alias="hub.mode")
    verify_token: str = Field(alias="hub.verify_token")
    challenge: str = Field(alias="hub.challenge", min_length=1)


class WebhookNotificationIn(BaseModel):
    """A Cloud API notification, signed with X-Hub-Signature-256 over the raw bytes.

    Only the envelope is refused (400): a body that is not JSON, not an object of this
    ``object``, or without an ``entry`` array. Inside it the parser is lenient: an entry,
    change, message or status it cannot use is skipped and noted, never refused, because
    Meta would otherwise redeliver the good parts forever. The example shows the shape Meta
    sends (``entry[].changes[].value`` with ``contacts``, ``messages`` and ``statuses``).
    """

    model_config = ConfigDict(
        extra="allow", json_schema_extra={"examples": [_EXAMPLE_NOTIFICATION]}
    )

    object: Literal["whatsapp_business_account"]
    entry: list[Any] = Field(description="Entries with their changes; unusable parts are skipped")


class WebhookAck(BaseModel):
    status: Literal["ok"]
    event_id: int = Field(description="The stored delivery (replayable by an admin)")
    messages: int = Field(description="New inbound messages stored")
    duplicates: int = Field(description="Messages already stored (redeliveries)")
    statuses: int = Field(description="Status changes applied")


class TokenPath(BaseModel):
    token: str = Field(max_length=MAX_TOKEN_LENGTH, pattern=TOKEN_PATTERN)


class PlainText(RootModel[str]):
    """The text itself (text/plain)."""


class HtmlPage(RootModel[str]):
    """A small page in the contact's language (text/html)."""
