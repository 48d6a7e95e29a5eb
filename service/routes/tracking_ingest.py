"""``POST /t/sync``: the batches of a site's tracking script (behind it: ``TrackingIngest``).

Authenticated by the site's public key and an ``Origin`` among the site's domains, so CORS is
per site: the answer (and ``OPTIONS /t/sync``, the preflight of ``fetch`` with JSON or an
``Idempotency-Key``) names the page's origin when a site allows it, which
``KERVAN_ALLOWED_ORIGINS`` knows nothing about.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core.consent.model import SUBJECT_PATTERN
from core.tracking.events import EVENT_ID_PATTERN, REF_PATTERN
from core.tracking.wire import (
    MAX_MILLIS,
    MAX_URL_LENGTH,
    SITE_KEY_PATTERN,
    VISITOR_PATTERN,
    is_site_key,
)
from service.endpoint import api
from service.errors import ApiError
from service.openapi import runtime_schema
from service.ratelimit import by_client_ip
from service.responses import json_response
from service.runtime import get_runtime
from service.tracking.ingest import SyncRequest, TrackingIngest, cors_headers
from service.validation import read_body

SYNC_PATH = "/t/sync"
#: Request fields a page may send (besides the CORS-safelisted ones).
ALLOWED_HEADERS = ("Content-Type", "Idempotency-Key", "X-Request-ID")
_ALLOWED_LOWER = frozenset(h.lower() for h in ALLOWED_HEADERS)
PREFLIGHT_MAX_AGE = "600"
_COUNTRY = re.compile(r"[A-Z]{2}")
_MEDIA_TYPES = ("", "application/json", "text/plain")
_STATE_KEY = "kervan_tracking_batch"


def _limits_text(app: Any) -> dict[str, Any]:
    settings = app.state.settings
    return {
        "description": (
            "A batch of a site's script. Content-Type application/json or text/plain "
            "(sendBeacon), the body JSON either way, at most "
            f"{settings.tracking_max_batch_bytes} bytes (else 413), at most "
            f"{settings.tracking_max_batch_events} events (else 422); an event larger than "
            f"{settings.tracking_max_event_bytes} bytes (its JSON) is rejected alone. Each "
            "event is checked on its own: one that breaks the event rules is answered "
            "`rejected` with a reason in `results`, and its neighbours are still stored. An "
            "event id already stored for the site (kept "
            f"{settings.tracking_dedup_days} days) is answered `duplicate`."
        )
    }


def _max_events(app: Any) -> dict[str, Any]:
    return {"maxItems": app.state.settings.tracking_max_batch_events}


class ConsentIn(BaseModel):
    analytics: bool | None = None
    ads: bool | None = None
    subject: str | None = Field(
        default=None,
        pattern=SUBJECT_PATTERN,
        description="The visitor's consent subject (ads conversions need its ads consent)",
    )


class PageIn(BaseModel):
    url: str | None = Field(default=None, max_length=MAX_URL_LENGTH)
    referrer: str | None = Field(default=None, max_length=MAX_URL_LENGTH)


class ContextIn(PageIn):
    user_agent_hint: Literal["mobile", "desktop", "tablet"] | None = None
    language: str | None = Field(default=None, max_length=35)
    screen: str | None = Field(default=None, max_length=16)


class IntentIn(BaseModel):
    kind: Literal["phone", "whatsapp"]
    target: str = Field(
        max_length=MAX_URL_LENGTH,
        description="The link clicked: tel:..., https://wa.me/..., api.whatsapp.com, "
        "chat.whatsapp.com, or a number",
    )
    ref: str | None = Field(
        default=None,
        pattern=REF_PATTERN,
        description="WhatsApp only: the code the script put in the pre-filled message",
    )


class EventIn(BaseModel):
    """One event. Rules checked per event (a breach rejects this event only): ``ts`` within
    the dedup window once corrected by ``sent_at``; ``url`` an http(s) URL; ``name`` 1-64
    characters (required for ``custom``); ``props`` an object nested at most 8 deep;
    ``intent`` required for ``intent`` events."""

    id: str = Field(pattern=EVENT_ID_PATTERN, description="The client's event id (dedup key)")
    type: Literal["page_view", "click", "intent", "custom"]
    ts: float = Field(gt=0, lt=MAX_MILLIS, description="Unix milliseconds (the visitor's clock)")
    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH)
    title: str | None = Field(default=None, max_length=4096)
    referrer: str | None = Field(default=None, max_length=MAX_URL_LENGTH)
    name: str | None = Field(default=None, min_length=1, max_length=64)
    props: dict[str, Any] | None = None
    intent: IntentIn | None = None


class SyncIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra=runtime_schema("tracking_sync_limits", _limits_text)
    )

    site: str = Field(pattern=SITE_KEY_PATTERN, description="The site's public key")
    visitor: str = Field(pattern=VISITOR_PATTERN)
    sent_at: float | None = Field(
        default=None, gt=0, lt=MAX_MILLIS, description="Unix ms when sent (visitor's clock)"
    )
    consent: ConsentIn | None = None
    context: ContextIn | None = None
    landing: PageIn | None = Field(
        default=None, description="The landing page of the script's session (attribution)"
    )
    events: list[EventIn] = Field(
        json_schema_extra=runtime_schema("tracking_sync_max_events", _max_events)
    )


class ResultOut(BaseModel):
    id: str | None = Field(description="The event's id as sent (null when unreadable)")
    outcome: Literal["accepted", "duplicate", "rejected"]
    reason: (
        Literal[
            "invalid_event",
            "too_large",
            "invalid_id",
            "invalid_type",
            "invalid_ts",
            "too_old",
            "invalid_field",
            "invalid_intent",
            "invalid_target",
            "invalid_ref",
            "quota_exceeded",
            "storage_failed",
        ]
        | None
    ) = None
    message: str | None = None
    warning: Literal["ref_code_taken", "intent_quota_exceeded"] | None = Field(
        default=None,
        description="Accepted, but: ref_code_taken (the WhatsApp reference code is another "
        "intent's; the intent is stored without it) or intent_quota_exceeded (the site's "
        "monthly intent quota is used up; the click is stored as an event, no intent made)",
    )


class SyncOut(BaseModel):
    results: list[ResultOut] = Field(description="One per event, in the batch's order")
    accepted: int
    duplicates: int
    rejected: int
    session: str | None = Field(description="The server-side session of the batch's last event")


@dataclass(frozen=True, slots=True)
class _Batch:
    raw: bytes
    body: Any


def _ingest(request: Request) -> TrackingIngest:
    return get_runtime(request).facility(TrackingIngest)


async def _read_batch(request: Request) -> _Batch:
    """The body, read and parsed once (the per-site rate limit reads the site key from it)."""
    held = request.scope.get(_STATE_KEY)
    if isinstance(held, ApiError):
        raise held
    if isinstance(held, _Batch):
        return held
    try:
        batch = await _parse(request)
    except ApiError as error:
        request.scope[_STATE_KEY] = error
        raise
    request.scope[_STATE_KEY] = batch
    return batch


async def _parse(request: Request) -> _Batch:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in _MEDIA_TYPES:
        raise ApiError(
            415, "unsupported_media_type", "send the batch as application/json or text/plain"
        )
    settings = get_runtime(request).settings
    raw = await read_body(request, settings.tracking_max_batch_bytes)
    if not raw:
        raise ApiError(400, "bad_request", "a JSON body is required")
    try:
        return _Batch(raw, orjson.loads(raw))
    except orjson.JSONDecodeError as error:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {error}") from None


async def by_site_key(request: Request) -> str | None:
    """The per-site rate limit's key: the site key the batch names (none when unreadable)."""
    try:
        batch = await _read_batch(request)
    except ApiError:
        return None  # refused by the handler, with its reason
    site = batch.body.get("site") if isinstance(batch.body, dict) else None
    return site if is_site_key(site) else None


def _country(request: Request) -> str | None:
    """The visitor's country, from the configured header of a trusted proxy only."""
    runtime = get_runtime(request)
    header = runtime.settings.tracking_country_header
    if not header:
        return None
    value = request.headers.get(header)
    peer = request.scope.get("client")
    if not value or not peer:
        return None
    try:
        address = ipaddress.ip_address(peer[0])
    except ValueError:
        return None
    if not any(address in network for network in runtime.settings.trusted_proxies):
        return None
    code = value.strip().upper()
    return code if _COUNTRY.fullmatch(code) and code != "XX" else None


@api(
    "Ingest a batch of a site's tracking events (each event answered on its own)",
    body=SyncIn,
    response=SyncOut,
    tags=["tracking"],
    responses={
        403: "origin_not_allowed: the Origin is not one of the site's domains",
        404: "unknown_site: no live site has this key",
        413: "The body exceeds tracking_max_batch_bytes",
        415: "Content-Type is neither application/json nor text/plain",
        422: "The batch's envelope is malformed (site, visitor, events array, metadata), it "
        "holds more than tracking_max_batch_events events, or the Idempotency-Key was used "
        "with another body (idempotency_key_reused)",
        429: "quota_exceeded (the site's monthly events; Retry-After until the month's end, "
        "X-Quota-Limit/Remaining/Reset) or rate limited (per site or per IP)",
    },
    limits=[("tracking.ip", by_client_ip), ("tracking.site", by_site_key)],
)
async def sync(request: Request) -> Response:
    batch = await _read_batch(request)
    ingest = _ingest(request)
    origin = request.headers.get("origin")
    try:
        answer = await ingest.sync(
            SyncRequest(
                body=batch.body,
                raw=batch.raw,
                origin=origin,
                idempotency_key=request.headers.get("idempotency-key"),
                user_agent=request.headers.get("user-agent"),
                country=_country(request),
            )
        )
    except ApiError as error:
        # The page reads why it was refused when some site allows its origin.
        if origin and error.status != 403 and await ingest.sites.any_site_allows(origin):
            error.headers = {**cors_headers(origin), **(error.headers or {})}
        raise
    return json_response(answer.body, answer.status, answer.headers)


@api(
    "CORS preflight of POST /t/sync for a page on a site's domain",
    status=204,
    tags=["tracking"],
    responses={
        400: "cors_rejected: a method other than POST or a header not allowed was asked for",
        403: "origin_not_allowed: no site has the Origin among its domains",
    },
    limits=[("tracking.ip", by_client_ip)],
)
async def sync_preflight(request: Request) -> Response:
    origin = request.headers.get("origin")
    method = request.headers.get("access-control-request-method")
    if origin is None or method is None:
        return Response(status_code=204, headers={"Allow": "OPTIONS, POST"})
    if not await _ingest(request).sites.any_site_allows(origin):
        raise ApiError(403, "origin_not_allowed", "no site has this Origin among its domains", None)
    asked = request.headers.get("access-control-request-headers", "")
    headers = [h.strip().lower() for h in asked.split(",") if h.strip()]
    refused = [h for h in headers if h not in _ALLOWED_LOWER]
    if method.upper() != "POST" or refused:
        raise ApiError(
            400,
            "cors_rejected",
            "the cross-origin request was refused: POST with "
            + ", ".join(ALLOWED_HEADERS)
            + " only",
            {"method": method[:20], "refused_headers": refused[:10]},
        )
    return Response(
        status_code=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": ", ".join(ALLOWED_HEADERS),
            "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
            "Vary": "Origin",
        },
    )


routes: list[BaseRoute] = [
    Route(SYNC_PATH, sync, methods=["POST"]),
    Route(SYNC_PATH, sync_preflight, methods=["OPTIONS"]),
]
#: Paths whose routes answer CORS themselves (per-site origins), for the edge.
own_cors_paths = (SYNC_PATH,)
