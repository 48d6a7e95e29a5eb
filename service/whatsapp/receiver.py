"""The webhook's front door: Meta's subscription handshake, the signature gate every delivery
passes before it is stored, the bound on pending deliveries, and an admin's replay of a stored
delivery."""

from __future__ import annotations

import hmac
from typing import Any

from core.whatsapp.signature import verify_signature
from service.audit import record_audit
from service.db.types import from_timestamp
from service.errors import ApiError
from service.settings import Settings
from service.whatsapp.facility import WhatsApp
from service.whatsapp.metrics import WEBHOOK_DELIVERIES
from service.whatsapp.webhook import Overloaded, PayloadRejected, WebhookOutcome


def verify_subscription(
    settings: Settings, mode: str | None, token: str | None, challenge: str | None
) -> str:
    """The challenge to echo when Meta registers the webhook with our verify token."""
    expected = settings.whatsapp_verify_token
    if (
        mode != "subscribe"
        or not expected
        or not hmac.compare_digest((token or "").encode(), expected.encode())
    ):
        raise ApiError(403, "verification_failed", "hub.mode or hub.verify_token is wrong")
    if not challenge:
        raise ApiError(400, "bad_request", "hub.challenge is missing")
    return challenge


def _counts(outcome: WebhookOutcome) -> dict[str, int]:
    return {
        "event_id": outcome.event_id,
        "messages": len(outcome.stored),
        "duplicates": outcome.duplicates,
        "statuses": len(outcome.changes),
    }


async def receive_signed(whatsapp: WhatsApp, body: bytes, signature: str | None) -> dict[str, Any]:
    """Processes a delivery whose ``X-Hub-Signature-256`` matches its raw bytes; the signature
    is checked before anything is parsed or stored. Beyond the pending bound the delivery is
    refused with 503 and ``Retry-After`` before it is stored (Meta delivers it again)."""
    settings = whatsapp.settings
    if not verify_signature(settings.whatsapp_app_secret, body, signature):
        WEBHOOK_DELIVERIES.labels("bad_signature").inc()
        raise ApiError(401, "invalid_signature", "X-Hub-Signature-256 is missing or wrong")
    try:
        outcome = await whatsapp.processor.handle(
            body, max_pending=settings.whatsapp_webhook_max_pending
        )
    except PayloadRejected as exc:
        raise ApiError(400, "invalid_payload", exc.reason, {"event_id": exc.event_id}) from None
    except Overloaded as exc:
        raise ApiError(
            503,
            "overloaded",
            exc.message,
            exc.details,
            {"Retry-After": str(exc.retry_after)},
        ) from None
    return {"status": "ok", **_counts(outcome)}


async def replay_delivery(whatsapp: WhatsApp, actor: str, event_id: int) -> dict[str, int]:
    """Processes a stored delivery again, audited under the admin's name."""
    runtime = whatsapp.runtime
    try:
        outcome = await whatsapp.processor.replay(event_id)
    except PayloadRejected as exc:
        # The request is fine; the stored delivery it names is what cannot be processed.
        raise ApiError(409, "invalid_payload", exc.reason, {"event_id": event_id}) from None
    async with runtime.db.begin() as conn:
        await record_audit(
            conn,
            actor=actor,
            action="whatsapp.webhook.replay",
            subject=f"wa_event:{event_id}",
            details={"messages": len(outcome.stored), "duplicates": outcome.duplicates},
            ts=from_timestamp(runtime.clock.now()),
        )
    return _counts(outcome)
