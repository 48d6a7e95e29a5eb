"""WhatsApp Cloud API webhook (verification handshake and signed notifications) and the
``/u/{token}`` unsubscribe link."""

from __future__ import annotations

from html import escape

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from core.i18n import Locale, from_accept_language
from core.whatsapp.texts import INVALID_LINK_PAGE, UNSUBSCRIBED_PAGE
from service.endpoint import api
from service.responses import json_response
from service.runtime import get_runtime
from service.validation import read_body
from service.whatsapp.facility import get_whatsapp
from service.whatsapp.receiver import receive_signed, verify_subscription
from service.whatsapp.unsubscribe import unsubscribe_by_token
from service.whatsapp.webhook_schemas import (
    HtmlPage,
    PlainText,
    TokenPath,
    VerifyQuery,
    WebhookAck,
    WebhookNotificationIn,
)


@api(
    "WhatsApp webhook verification handshake",
    query=VerifyQuery,
    response=PlainText,
    tags=["whatsapp"],
    media_type="text/plain",
    responses={400: "hub.challenge missing", 403: "wrong mode or verify token"},
)
async def verify_webhook(request: Request) -> Response:
    params = request.query_params
    challenge = verify_subscription(
        get_runtime(request).settings,
        params.get("hub.mode"),
        params.get("hub.verify_token"),
        params.get("hub.challenge"),
    )
    return PlainTextResponse(challenge)


@api(
    "WhatsApp Cloud API notifications (signed with X-Hub-Signature-256)",
    body=WebhookNotificationIn,
    response=WebhookAck,
    tags=["whatsapp"],
    responses={
        400: "Not a WhatsApp notification (stored, not processed)",
        401: "Missing or bad signature",
        503: "Processing failed (the delivery is kept and Meta delivers it again), or too many "
        "deliveries are pending (`overloaded`, nothing stored, with `Retry-After`)",
    },
)
async def receive_webhook(request: Request) -> Response:
    runtime = get_runtime(request)
    body = await read_body(request, runtime.settings.whatsapp_max_body_bytes)
    signature = request.headers.get("x-hub-signature-256")
    return json_response(await receive_signed(get_whatsapp(runtime), body, signature))


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


def _token(request: Request) -> str | None:
    """The link's token when it has the documented form (any other names nobody)."""
    try:
        return TokenPath.model_validate(request.path_params).token
    except ValidationError:
        return None


@api(
    "Unsubscribe link: withdraws WhatsApp consent",
    path=TokenPath,
    bad_path=404,
    response=HtmlPage,
    tags=["whatsapp"],
    media_type="text/html",
    responses={404: "Unknown or forged link (a page in the reader's language)"},
)
async def unsubscribe(request: Request) -> Response:
    token = _token(request)
    whatsapp = get_whatsapp(get_runtime(request))
    found = None if token is None else await unsubscribe_by_token(whatsapp, token)
    if found is not None:
        title, text = UNSUBSCRIBED_PAGE[found]
        return _page(found, title, text, 200)
    locale = from_accept_language(request.headers.get("accept-language"))
    title, text = INVALID_LINK_PAGE[locale]
    return _page(locale, title, text, 404)


routes: list[BaseRoute] = [
    Route("/webhooks/wa", verify_webhook, methods=["GET"]),
    Route("/webhooks/wa", receive_webhook, methods=["POST"]),
    Route("/u/{token}", unsubscribe, methods=["GET", "POST"]),
]
