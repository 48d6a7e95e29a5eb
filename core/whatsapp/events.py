"""Typed events extracted from a WhatsApp Cloud API webhook payload."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

StatusName = Literal["sent", "delivered", "read", "failed"]

#: Message types the Cloud API documents; anything else is kept as ``unknown``.
KNOWN_MESSAGE_TYPES = frozenset(
    {
        "text",
        "image",
        "audio",
        "video",
        "document",
        "sticker",
        "location",
        "contacts",
        "interactive",
        "button",
        "reaction",
        "order",
        "system",
        "unsupported",
    }
)


@dataclass(frozen=True, slots=True)
class ProviderErrorInfo:
    """One entry of an ``errors`` array (on a message, a status or a change value)."""

    code: int | None
    title: str | None
    message: str | None
    details: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "title": self.title,
            "message": self.message,
            "details": self.details,
        }


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A message a customer sent to the business number."""

    provider_id: str
    wa_id: str
    kind: str
    #: Seconds since the epoch as sent by WhatsApp; ``None`` when absent or malformed.
    timestamp: int | None
    #: The human-readable part (text body, caption, button title, reaction emoji), if any.
    body: str | None
    #: The type-specific object as received (media ids, coordinates, button ids, ...).
    content: dict[str, Any]
    #: The message this one replies to (``context.id``), if any.
    reply_to: str | None = None
    context: dict[str, Any] | None = None
    #: Click-to-WhatsApp ad referral, if any.
    referral: dict[str, Any] | None = None
    profile_name: str | None = None
    phone_number_id: str | None = None
    #: The type as WhatsApp named it (differs from ``kind`` only for unknown types).
    raw_type: str = ""
    errors: tuple[ProviderErrorInfo, ...] = ()

    def payload(self) -> dict[str, Any]:
        """Everything beyond ``body`` worth keeping with the stored message."""
        data: dict[str, Any] = {"type": self.raw_type or self.kind, "content": self.content}
        if self.context is not None:
            data["context"] = self.context
        if self.referral is not None:
            data["referral"] = self.referral
        if self.errors:
            data["errors"] = [error.as_dict() for error in self.errors]
        return data


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """A delivery status of a message the business sent."""

    provider_id: str
    status: StatusName
    timestamp: int | None
    recipient_id: str | None = None
    errors: tuple[ProviderErrorInfo, ...] = ()


@dataclass(slots=True)
class WebhookBatch:
    """Everything one webhook delivery carried, in payload order."""

    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusEvent] = field(default_factory=list)
    #: ``wa_id`` -> profile name from every ``contacts`` array.
    profiles: dict[str, str | None] = field(default_factory=dict)
    #: Change-level ``errors`` (e.g. a webhook delivery problem reported by Meta).
    errors: list[ProviderErrorInfo] = field(default_factory=list)
    #: Parts that were skipped because they were malformed (human-readable, for the raw event log).
    issues: list[str] = field(default_factory=list)
