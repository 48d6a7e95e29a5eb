"""WhatsApp Cloud API webhook (verification handshake and signed notifications) and the
``/u/{token}`` unsubscribe link."""

from __future__ import annotations

import hmac
from html import escape
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from core.i18n import Locale, from_accept_language
from core.whatsapp.signature import verify_signature
from core.whatsapp.texts import INVALID_LINK_PAGE, UNSUBSCRIBED_PAGE
from core.whatsapp.unsubscribe import read_token
from service.endpoint import api
from service.errors import ApiError
from service.logging import get_logger
from service.responses import json_response
from service.runtime import get_runtime
from service.validation import read_body
from service.whatsapp.facility import get_whatsapp
from service.whatsapp.metrics import WEBHOOK_DELIVERIES
from service.whatsapp.unsubscribe import unsubscribe_contact
from service.whatsapp.webhook import PayloadRejected

log = get_logger("kervan.whatsapp.routes")


class VerifyQuery(BaseModel):
    """The handshake Meta sends when the webhook is registered (documentation only)."""

    mode: Literal["subscribe"] = Field(alias="hub.mode")
    verify_token: str = Field(alias="hub.verify_token")
    challenge: str = Field(alias="hub.challenge", min_length=1)


class _Open(BaseModel):
    # Meta adds fields over time; the parser skips what it does not know.
    model_config = ConfigDict(extra="allow")


class WaProfile(_Open):
    name: str | None = None


class WaContact(_Open):
    wa_id: str = Field(max_length=64)
    profile: WaProfile | None = None


class WaText(_Open):
    body: str


class WaMessage(_Open):
    from_: str = Field(alias="from", max_length=64)
    id: str = Field(max_length=191)
    timestamp: str | None = Field(default=None, description="epoch seconds as a decimal string")
    type: str = Field(max_length=64)
    text: WaText | None = None
    context: dict[str, Any] | None = None


class WaStatus(_Open):
    id: str = Field(max_length=191)
    status: Literal["sent", "delivered", "read", "failed"]
    timestamp: str | None = None
    recipient_id: str | None = Field(default=None, max_length=64)
    errors: list[dict[str, Any]] | None = None


class WaMetadata(_Open):
    phone_number_id: str | None = None
    display_phone_number: str | None = None


class WaValue(_Open):
    messaging_product: str | None = None
    metadata: WaMetadata | None = None
    contacts: list[WaContact] = []
    messages: list[WaMessage] = []
    statuses: list[WaStatus] = []


class WaChange(_Open):
    field: str
    value: WaValue


class WaEntry(_Open):
    id: str | None = None
    changes: list[WaChange]


class WebhookNotificationIn(_Open):
    """A Cloud API notification (documentation only: the handler checks the signature on the
    raw bytes, then ``core.whatsapp.parse`` reads it leniently and skips malformed parts)."""

    object: Literal["whatsapp_business_account"]
    entry: list[WaEntry]


class WebhookAck(BaseModel):
    status: str
    event_id: int
    messages: int
    duplicates: int
    statuses: int


@api(
    "WhatsApp webhook verification handshake",
    query=VerifyQuery,
    tags=["whatsapp"],
    media_type="text/plain",
    responses={400: "hub.challenge missing", 403: "wrong mode or verify token"},
)
async def verify_webhook(request: Request) -> Response:
    settings = get_runtime(request).settings
    params = request.query_params
    expected = settings.whatsapp_verify_token
    token = params.get("hub.verify_token", "")
    challenge = params.get("hub.challenge")
    if (
        params.get("hub.mode") != "subscribe"
        or not expected
        or not hmac.compare_digest(token.encode(), expected.encode())
    ):
        raise ApiError(403, "verification_failed", "hub.mode or hub.verify_token is wrong")
    if not challenge:
        raise ApiError(400, "bad_request", "hub.challenge is missing")
    return PlainTextResponse(challenge)


@api(
    "WhatsApp Cloud API notifications (signed with X-Hub-Signature-256)",
    body=WebhookNotificationIn,
    response=WebhookAck,
    tags=["whatsapp"],
    responses={400: "not a WhatsApp notification", 401: "missing or bad signature"},
)
async def receive_webhook(request: Request) -> Response:
    runtime = get_runtime(request)
    whatsapp = get_whatsapp(runtime)
    body = await read_body(request, runtime.settings.whatsapp_max_body_bytes)
    # The signature is checked on the raw bytes before anything is parsed or stored.
    if not verify_signature(
        runtime.settings.whatsapp_app_secret, body, request.headers.get("x-hub-signature-256")
    ):
        WEBHOOK_DELIVERIES.labels("bad_signature").inc()
        raise ApiError(401, "invalid_signature", "X-Hub-Signature-256 is missing or wrong")
    try:
        outcome = await whatsapp.processor.handle(body)
    except PayloadRejected as exc:
        raise ApiError(400, "invalid_payload", exc.reason, {"event_id": exc.event_id}) from None
    return json_response(
        {
            "status": "ok",
            "event_id": outcome.event_id,
            "messages": len(outcome.stored),
            "duplicates": outcome.duplicates,
            "statuses": len(outcome.changes),
        }
    )


def _page(locale: Locale, title: str, text: str, status: int) -> HTMLResponse:
    html = (
        f'<!doctype html><html lang="{locale}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title></head><body><main><h1>{escape(title)}</h1>"
        f"<p>{escape(text)}</p></main></body></html>"
    )
    return HTMLResponse(
        html, status_code=status, headers={"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}
    )


@api("Unsubscribe link: withdraws WhatsApp consent", tags=["whatsapp"], media_type="text/html")
async def unsubscribe(request: Request) -> Response:
    runtime = get_runtime(request)
    whatsapp = get_whatsapp(runtime)
    contact_id = read_token(whatsapp.unsubscribe_secret, request.path_params["token"])
    locale = from_accept_language(request.headers.get("accept-language"))
    if contact_id is not None:
        found = await unsubscribe_contact(runtime, contact_id)
        if found is not None:
            title, text = UNSUBSCRIBED_PAGE[found]
            return _page(found, title, text, 200)
    title, text = INVALID_LINK_PAGE[locale]
    return _page(locale, title, text, 404)


routes: list[BaseRoute] = [
    Route("/webhooks/wa", verify_webhook, methods=["GET"]),
    Route("/webhooks/wa", receive_webhook, methods=["POST"]),
    Route("/u/{token}", unsubscribe, methods=["GET", "POST"]),
]
