"""Operators' view of rate limiting: list and lift lockouts (audited), list the policies.

The limiter is set up by the rate-limiting feature (``service/ratelimit/feature.py``) on
``runtime.ratelimiter``; every other feature reaches it there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from service.endpoint import admin_principal, api
from service.errors import ApiError
from service.openapi import runtime_enum
from service.ratelimit.admin import LiftOutcome, RateLimitAdmin
from service.ratelimit.http import limiter_of
from service.responses import json_response
from service.validation import parse_body, parse_query

NO_STORE = {"Cache-Control": "no-store"}


class LockoutsQuery(BaseModel):
    limit: int = Field(default=100, ge=1, le=1000)


class LockOut(BaseModel):
    rule: str
    key: str
    locked_until: datetime
    retry_after: int


class LockoutsOut(BaseModel):
    items: list[LockOut]


def _lockout_rules(app: Any) -> list[str]:
    return RateLimitAdmin(limiter_of(app)).lockout_rules()


class LiftIn(BaseModel):
    rule: str = Field(
        min_length=1,
        max_length=64,
        description="A lockout rule in force",
        json_schema_extra=runtime_enum("lockout_rules", _lockout_rules),
    )
    key: str = Field(min_length=1, max_length=256)


class LiftOut(BaseModel):
    rule: str
    key: str
    lifted: bool


class PolicyOut(BaseModel):
    name: str
    spec: str
    burst: int
    interval_seconds: float
    failure_mode: str
    shadow: bool


class RuleOut(BaseModel):
    name: str
    spec: str


class PoliciesOut(BaseModel):
    backend: str
    policies: list[PolicyOut]
    lockouts: list[RuleOut]


def _admin(request: Request) -> RateLimitAdmin:
    return RateLimitAdmin(limiter_of(request.app))


@api(
    "Active lockouts, soonest to end first (admin)",
    query=LockoutsQuery,
    response=LockoutsOut,
    tags=["ratelimit", "admin"],
    admin=True,
)
async def list_lockouts(request: Request) -> Response:
    query = parse_query(request, LockoutsQuery)
    items = await _admin(request).active_locks(query.limit)
    return json_response({"items": items}, headers=NO_STORE)


@api(
    "Lift a lockout (admin; audited)",
    body=LiftIn,
    response=LiftOut,
    tags=["ratelimit", "admin"],
    responses={404: "No active lock for this rule and key"},
    admin=True,
)
async def lift_lockout(request: Request) -> Response:
    principal = admin_principal(request)
    body = await parse_body(request, LiftIn)
    outcome = await _admin(request).lift(body.rule, body.key, actor=principal.id)
    if outcome is LiftOutcome.UNKNOWN_RULE:
        raise ApiError(
            422,
            "validation_failed",
            f"unknown lockout rule {body.rule!r}",
            [{"field": "body.rule", "message": "unknown lockout rule", "type": "value_error"}],
        )
    if outcome is LiftOutcome.NOT_LOCKED:
        raise ApiError(404, "not_found", "no active lock for this rule and key")
    return json_response({"rule": body.rule, "key": body.key, "lifted": True}, headers=NO_STORE)


@api(
    "Rate-limit policies and lockout rules in force (admin)",
    response=PoliciesOut,
    tags=["ratelimit", "admin"],
    admin=True,
)
async def list_policies(request: Request) -> Response:
    return json_response(_admin(request).policies(), headers=NO_STORE)


routes: list[BaseRoute] = [
    Route("/admin/lockouts", list_lockouts, methods=["GET"]),
    Route("/admin/lockouts/lift", lift_lockout, methods=["POST"]),
    Route("/admin/ratelimit/policies", list_policies, methods=["GET"]),
]
