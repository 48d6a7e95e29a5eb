"""A site's quota usage: this month's events and intents against its effective limits, the
warnings its owners were sent, and the months before.

For a member of the site (any role) or a platform admin; a site the caller may not see is 404.
Platform admins set a site's limits in its config (``monthly_events``, ``monthly_intents``)
through ``PATCH /admin/sites/{site_id}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from service.endpoint import api
from service.responses import json_response
from service.runtime import get_runtime
from service.tracking.dashboard_schemas import DashboardSitePath
from service.tracking.people_guard import request_actor
from service.tracking.quota_usage import read_usage
from service.validation import parse_path

TAGS = ["tracking-dashboard"]
NO_SITE = {
    401: "Sign in first: a person's session or admin credentials",
    404: "No such site (or not one of yours)",
}


class QuotaOut(BaseModel):
    used: int = Field(ge=0, description="Used this month")
    limit: int = Field(ge=0, description="The effective monthly limit")
    remaining: int = Field(ge=0)
    percent: float = Field(ge=0, description="Used, in percent of the limit (100 for limit 0)")
    source: Literal["site", "default"] = Field(
        description="site: the site's own plan limit (its config); default: the server's"
    )
    warned: int = Field(
        ge=0, le=100, description="Highest warning sent to the owners this month (0: none)"
    )


class MonthUsageOut(BaseModel):
    month: str = Field(description="YYYY-MM (UTC)")
    events: int = Field(ge=0)
    intents: int = Field(ge=0)


class UsageOut(BaseModel):
    site_id: int
    month: str = Field(description="The current quota month, YYYY-MM (UTC)")
    reset_at: datetime = Field(description="When the counts start over")
    warning_percent: int = Field(description="Share of a limit at which the owners are warned")
    events: QuotaOut
    intents: QuotaOut
    history: list[MonthUsageOut] = Field(description="Up to 12 earlier months, newest first")


@api(
    "The site's quota usage this month (events, intents) against its limits, and before",
    path=DashboardSitePath,
    bad_path=404,
    response=UsageOut,
    tags=TAGS,
    responses=NO_SITE,
)
async def get_usage(request: Request) -> Response:
    actor = await request_actor(request)
    path = parse_path(request, DashboardSitePath, bad_path=404)
    runtime = get_runtime(request)
    answer = await read_usage(
        runtime.db, actor, path.site_id, runtime.settings, runtime.clock.now()
    )
    return json_response(answer)


routes: list[BaseRoute] = [
    Route("/t/sites/{site_id}/usage", get_usage, methods=["GET"]),
]
