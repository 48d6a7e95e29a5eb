"""Operators' view of rate limiting: list and lift lockouts (audited), list the policies.

The limiter is set up by the rate-limiting feature (``service/ratelimit/feature.py``) on
``runtime.ratelimiter``; every other feature reaches it there.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core.ratelimit.decision import ceil_seconds
from service.endpoint import admin_principal, api
from service.errors import ApiError
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


class LiftIn(BaseModel):
    rule: str = Field(min_length=1, max_length=64)
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


@api(
    "Active lockouts, soonest to end first (admin)",
    query=LockoutsQuery,
    response=LockoutsOut,
    tags=["ratelimit", "admin"],
    admin=True,
)
async def list_lockouts(request: Request) -> Response:
    query = parse_query(request, LockoutsQuery)
    locks, now = await limiter_of(request.app).lockouts.active_locks(query.limit)
    items = [
        {
            "rule": lock.rule,
            "key": lock.key,
            "locked_until": datetime.fromtimestamp(lock.until / 1_000_000, UTC),
            "retry_after": ceil_seconds(lock.until - now),
        }
        for lock in locks
    ]
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
    lockouts = limiter_of(request.app).lockouts
    if body.rule not in lockouts.catalog.lockouts:
        raise ApiError(
            422,
            "validation_failed",
            f"unknown lockout rule {body.rule!r}",
            [{"field": "body.rule", "message": "unknown lockout rule", "type": "value_error"}],
        )
    if not await lockouts.unlock(body.rule, body.key, actor=principal.id):
        raise ApiError(404, "not_found", "no active lock for this rule and key")
    return json_response({"rule": body.rule, "key": body.key, "lifted": True}, headers=NO_STORE)


@api(
    "Rate-limit policies and lockout rules in force (admin)",
    response=PoliciesOut,
    tags=["ratelimit", "admin"],
    admin=True,
)
async def list_policies(request: Request) -> Response:
    limiter = limiter_of(request.app)
    return json_response(
        {
            "backend": limiter.kind,
            "policies": [
                {
                    "name": p.name,
                    "spec": p.describe(),
                    "burst": p.burst,
                    "interval_seconds": p.interval / 1_000_000,
                    "failure_mode": p.failure_mode.value,
                    "shadow": p.shadow,
                }
                for p in limiter.catalog.policies.values()
            ],
            "lockouts": [
                {"name": r.name, "spec": r.describe()} for r in limiter.catalog.lockouts.values()
            ],
        },
        headers=NO_STORE,
    )


routes: list[BaseRoute] = [
    Route("/admin/lockouts", list_lockouts, methods=["GET"]),
    Route("/admin/lockouts/lift", lift_lockout, methods=["POST"]),
    Route("/admin/ratelimit/policies", list_policies, methods=["GET"]),
]
