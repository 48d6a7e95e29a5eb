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

from core.flows.segments import validate_segment
from service.endpoint import api
from service.runtime import Runtime, get_runtime
from service.speculation.cache import SpeculationCache
from service.speculation.metrics import RESPONSES, RULES_SERVED
from service.validation import parse_query

MEDIA_TYPE = "application/speculationrules+json"


class SpeculationQuery(BaseModel):
    seg: str = Field(max_length=32, description="Segment, e.g. en-d", examples=["en-d"])
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


def _etag_matches(header: str | None, etag: str) -> bool:
    """``If-None-Match`` uses the weak comparison (RFC 9110 13.1.2): ``W/`` is ignored."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


def speculation_cache(runtime: Runtime) -> SpeculationCache:
    return runtime.facility(SpeculationCache)


@api(
    "Speculation Rules (prerender/prefetch) for a segment",
    query=SpeculationQuery,
    response=RulesOut,
    media_type=MEDIA_TYPE,
    tags=["speculation"],
    responses={304: "Not modified (If-None-Match)"},
)
async def dynamic_rules(request: Request) -> Response:
    runtime = get_runtime(request)
    settings = runtime.settings
    query = parse_query(request, SpeculationQuery)
    seg = validate_segment(query.seg, settings.speculation_segments)
    answer = await speculation_cache(runtime).get(seg, query.mode or settings.speculation_mode)
    headers = {
        "ETag": answer.etag,
        "Cache-Control": f"public, max-age={settings.speculation_cache_max_age_seconds}",
    }
    if _etag_matches(request.headers.get("if-none-match"), answer.etag):
        RESPONSES.labels(seg, "304").inc()
        return Response(status_code=304, headers=headers)
    RESPONSES.labels(seg, "200").inc()
    RULES_SERVED.labels(seg, "prerender").inc(answer.prerender)
    RULES_SERVED.labels(seg, "prefetch").inc(answer.prefetch)
    return Response(answer.body, media_type=MEDIA_TYPE, headers=headers)


routes: list[BaseRoute] = [
    Route("/perf/speculation/dynamic", dynamic_rules, methods=["GET"]),
]
