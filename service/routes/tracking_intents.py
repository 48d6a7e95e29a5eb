"""Changing intents (status, seal as a sale, junk), and the calls a site's phone system reports.

The intents' reads are the dashboard's (``service/routes/tracking_dashboard.py``); a change here
answers with the same representation as ``GET /t/sites/{site_id}/intents/{intent_id}``. Every
handler makes one call into ``service.tracking`` (``intent_changes``, ``call_reports``), which
resolves the caller's scope of the site in its transaction: an intent of another site is 404,
like one that does not exist. ``POST /t/calls`` is for phone systems, authenticated by the
site's calls token (``POST /t/sites/{site_id}/calls-token``), not by a person.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from service.db.types import from_timestamp
from service.endpoint import api
from service.errors import ApiError
from service.openapi import validation_rules
from service.responses import json_response
from service.runtime import get_runtime
from service.tracking.call_reports import calls_site, site_calls, store_call
from service.tracking.calls import E164_PATTERN
from service.tracking.dashboard_ledger import MAX_ID
from service.tracking.dashboard_schemas import IntentOut, PathId
from service.tracking.intent_changes import change_intent_status, seal_sale
from service.tracking.lifecycle import RULE_AMOUNT
from service.tracking.people_guard import request_actor
from service.validation import parse_body, parse_path, parse_query

TAGS = ["tracking-intents"]
UNAUTHORIZED = {401: "Sign in first: a person's session or admin credentials"}
NO_INTENT = {
    **UNAUTHORIZED,
    403: "Viewers read a site's intents but do not change them",
    404: "No such site or intent (or not one of yours)",
}
#: A decimal string with at most two decimals: money is never a binary float on the wire.
AMOUNT_PATTERN = r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,2})?$"
#: A phone system's clock may run a little ahead of ours; a call further in the future is refused,
#: and so is one older than any intent it could still be matched to be worth storing.
FUTURE_SKEW = timedelta(minutes=5)
OLDEST_CALL = timedelta(days=366)
RULE_CALL_TIME = "a call's time is within the past year and not more than 5 minutes in the future"
MAX_CALLS_PAGE = 200


# Constraints on the types, not on the fields: a field ``T | None`` with constraints would apply
# them to an explicit null too (and fail).
Currency = Annotated[str, Field(pattern=r"^[A-Za-z]{3}$")]
Phone = Annotated[str, Field(pattern=E164_PATTERN)]
Duration = Annotated[int, Field(ge=0, le=86_400)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Path models are spelled out as parameters in /openapi.json: their names must be unique in the
# whole app, hence the prefixes.
class LifecycleIntentPath(Strict):
    site_id: PathId
    intent_id: PathId


class CallsSitePath(Strict):
    site_id: PathId


class StatusIn(Strict):
    status: Literal["pending", "junk", "cancelled"] = Field(
        description="A sale is sealed (POST .../seal), not set"
    )


class SealIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=validation_rules(RULE_AMOUNT))

    amount: str = Field(
        pattern=AMOUNT_PATTERN, description='The sale\'s value as a decimal string, e.g. "1250.00"'
    )
    currency: Currency | SkipJsonSchema[None] = Field(
        default=None, description="ISO 4217; default: the site's"
    )


class CallIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=validation_rules(RULE_CALL_TIME))

    caller: str = Field(pattern=E164_PATTERN, description="The caller's number, E.164")
    at: AwareDatetime = Field(description="When the call came in (RFC 3339, with an offset)")
    duration_seconds: Duration | SkipJsonSchema[None] = None
    callee: Phone | SkipJsonSchema[None] = Field(
        default=None, description="The number dialled, E.164"
    )


class CallOut(BaseModel):
    id: int
    caller: str
    callee: str | None
    called_at: datetime
    duration_seconds: int | None
    intent_id: int | None = Field(description="The phone intent the call was matched to")
    received_at: datetime


class CallResultOut(BaseModel):
    call: CallOut
    matched: bool
    duplicate: bool = Field(description="This call was reported before: its first answer")


class TrackedCallsQuery(Strict):
    before: Id | SkipJsonSchema[None] = Field(
        default=None, description="The last id of the previous page"
    )
    limit: int = Field(default=50, ge=1, le=MAX_CALLS_PAGE)
    matched: bool | SkipJsonSchema[None] = Field(
        default=None, description="Only matched (true) or unmatched (false) calls"
    )


class CallsOut(BaseModel):
    items: list[CallOut]
    next_before: int | None = Field(description="`before` of the next page; null: the last page")


def _now(request: Request) -> datetime:
    return from_timestamp(get_runtime(request).clock.now())


async def _status(request: Request, status: str | None) -> Response:
    actor = await request_actor(request)
    path = parse_path(request, LifecycleIntentPath, bad_path=404)
    if status is None:
        status = (await parse_body(request, StatusIn)).status
    answer = await change_intent_status(
        get_runtime(request), actor, path.site_id, path.intent_id, status, now=_now(request)
    )
    return json_response(answer)


@api(
    "Set an intent's status: pending, junk or cancelled (editors and owners)",
    path=LifecycleIntentPath,
    bad_path=404,
    body=StatusIn,
    response=IntentOut,
    tags=TAGS,
    responses={**NO_INTENT, 409: "The intent is sealed as a sale (or changed meanwhile)"},
)
async def patch_intent(request: Request) -> Response:
    return await _status(request, None)


@api(
    "Mark an intent as junk (editors and owners)",
    path=LifecycleIntentPath,
    bad_path=404,
    response=IntentOut,
    tags=TAGS,
    responses={**NO_INTENT, 409: "The intent is sealed as a sale (or changed meanwhile)"},
)
async def junk_intent(request: Request) -> Response:
    return await _status(request, "junk")


@api(
    "Seal an intent as a sale with its amount (idempotent for the same amount and currency)",
    path=LifecycleIntentPath,
    bad_path=404,
    body=SealIn,
    response=IntentOut,
    tags=TAGS,
    responses={**NO_INTENT, 409: "Already sealed with another amount or currency"},
)
async def seal_intent(request: Request) -> Response:
    actor = await request_actor(request)
    path = parse_path(request, LifecycleIntentPath, bad_path=404)
    body = await parse_body(request, SealIn)
    answer = await seal_sale(
        get_runtime(request),
        actor,
        path.site_id,
        path.intent_id,
        amount=Decimal(body.amount),
        currency=body.currency,
        now=_now(request),
    )
    return json_response(answer)


def _calls_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


@api(
    "Report a call (phone systems, with the site's calls token as Bearer): stored, and matched "
    "to the closest pending phone intent before it",
    body=CallIn,
    response=CallResultOut,
    status=201,
    tags=TAGS,
    responses={
        200: "The call was reported before: the stored call and its match",
        401: "The calls token is missing or wrong",
        409: "The same call is being stored by a concurrent request: retry",
    },
)
async def report_call(request: Request) -> Response:
    runtime = get_runtime(request)
    token = _calls_token(request)
    await calls_site(runtime, token)  # 401 before the body is looked at
    body = await parse_body(request, CallIn)
    now = _now(request)
    # Aware datetimes compare without overflow whatever their offsets (year 1 or 9999).
    if not now - OLDEST_CALL <= body.at <= now + FUTURE_SKEW:
        raise ApiError(422, "validation_failed", RULE_CALL_TIME, {"at": body.at.isoformat()})
    called_at = body.at.astimezone(UTC)
    outcome = await store_call(
        runtime,
        token,
        caller=body.caller,
        called_at=called_at,
        callee=body.callee,
        duration_seconds=body.duration_seconds,
        now=now,
    )
    call = outcome.call
    answer = {"call": call, "matched": call["intent_id"] is not None, "duplicate": not outcome.new}
    return json_response(answer, status=201 if outcome.new else 200)


@api(
    "A site's reported calls, newest first, matched or not",
    path=CallsSitePath,
    bad_path=404,
    query=TrackedCallsQuery,
    response=CallsOut,
    tags=TAGS,
    responses={**UNAUTHORIZED, 404: "No such site (or not one of yours)"},
)
async def calls(request: Request) -> Response:
    actor = await request_actor(request)
    path = parse_path(request, CallsSitePath, bad_path=404)
    query = parse_query(request, TrackedCallsQuery)
    items = await site_calls(
        get_runtime(request),
        actor,
        path.site_id,
        before=query.before,
        limit=query.limit,
        matched=query.matched,
    )
    next_before = items[-1]["id"] if len(items) == query.limit else None
    return json_response({"items": items, "next_before": next_before})


routes: list[BaseRoute] = [
    Route("/t/sites/{site_id}/intents/{intent_id}", patch_intent, methods=["PATCH"]),
    Route("/t/sites/{site_id}/intents/{intent_id}/seal", seal_intent, methods=["POST"]),
    Route("/t/sites/{site_id}/intents/{intent_id}/junk", junk_intent, methods=["POST"]),
    Route("/t/calls", report_call, methods=["POST"]),
    Route("/t/sites/{site_id}/calls", calls, methods=["GET"]),
]
