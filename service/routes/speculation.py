"""``GET /perf/speculation/dynamic?seg=``: Chrome Speculation Rules for a segment.

Served from the per-segment cache as ``application/speculationrules+json`` (so a page can point
its ``Speculation-Rules`` response header here), with a strong ``ETag`` and ``Cache-Control``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from service.endpoint import api
from service.runtime import get_runtime
from service.speculation.cache import SpeculationCache
from service.speculation.fields import Segment
from service.speculation.serving import MEDIA_TYPE, RULES_PATH, serve_rules
from service.validation import parse_query


class SpeculationQuery(BaseModel):
    seg: Segment = Field(max_length=32)
    mode: Literal["montecarlo", "exact"] | None = Field(
        default=None, description="Monte-Carlo walk or exact expected visits (default: setting)"
    )


class RuleOut(BaseModel):
    source: Literal["document"]
    where: dict[str, Any]
    eagerness: Literal["immediate", "eager", "moderate", "conservative"]
    tag: str


class RulesOut(BaseModel):
    prerender: list[RuleOut]
    prefetch: list[RuleOut]


@api(
    "Speculation Rules (prerender/prefetch) for a segment",
    query=SpeculationQuery,
    response=RulesOut,
    media_type=MEDIA_TYPE,
    tags=["speculation"],
    responses={304: "Not modified (If-None-Match)"},
)
async def dynamic_rules(request: Request) -> Response:
    query = parse_query(request, SpeculationQuery)
    reply = await serve_rules(
        get_runtime(request).facility(SpeculationCache),
        query.seg,
        query.mode,
        request.headers.get("if-none-match"),
    )
    if reply.body is None:
        return Response(status_code=304, headers=reply.headers)
    return Response(reply.body, media_type=MEDIA_TYPE, headers=reply.headers)


routes: list[BaseRoute] = [
    Route(RULES_PATH, dynamic_rules, methods=["GET"]),
]
