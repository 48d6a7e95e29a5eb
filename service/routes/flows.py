"""Flow ingestion and the edge store's admin API (behind them: ``FlowsFacility``).

``POST /flows/events`` (front ends, rate limited per client IP): up to 1,000 navigation events
``{seg, from, to}`` and/or page views ``{session_id, seg, path, ts}``, accepted whole or refused
whole with every bad index listed. ``POST /flows/edges`` and ``GET /flows/edges`` (admin) load and
list aggregated counts, e.g. from analytics exports.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core.flows.events import MAX_BATCH, MAX_TIMESTAMP, TS_WINDOW_RULE
from core.flows.paths import MAX_PATH_LENGTH
from service.endpoint import api
from service.openapi import validation_rules
from service.ratelimit import by_client_ip
from service.responses import json_response
from service.runtime import get_runtime
from service.speculation.fields import OneOf, PagePath, Segment, SessionId
from service.speculation.flows import CURSOR_RULE, FlowsFacility
from service.speculation.imports import EdgesIn
from service.validation import parse_json, parse_query

EDGE_PAGE_MAX = 5000


class NavigationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seg: Segment
    from_: PagePath = Field(alias="from")
    to: PagePath


class PageViewIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=validation_rules(TS_WINDOW_RULE))

    session_id: SessionId
    seg: Segment
    path: PagePath
    ts: float = Field(
        gt=0,
        lt=MAX_TIMESTAMP,
        description="Unix seconds of the page view: within the last 7 days and at most "
        "5 minutes ahead of the server's clock",
    )


class EventsIn(BaseModel):
    events: list[Annotated[NavigationIn | PageViewIn, OneOf()]] = Field(
        max_length=MAX_BATCH,
        description="Navigations and page views; one bad item refuses the whole batch",
    )


class EventsOut(BaseModel):
    accepted: int
    transitions: int
    ignored: int


class ImportOut(BaseModel):
    seg: str
    replace: bool
    edges: int = Field(description="Distinct edges loaded once normalized")


_CURSOR = "Cursor from the previous page's `next`; after_from and after_to go together"


class EdgesQuery(BaseModel):
    model_config = ConfigDict(json_schema_extra=validation_rules(CURSOR_RULE))

    seg: Segment = Field(max_length=8)
    limit: int = Field(default=1000, ge=1, le=EDGE_PAGE_MAX)
    after_from: str | None = Field(default=None, max_length=MAX_PATH_LENGTH, description=_CURSOR)
    after_to: str | None = Field(default=None, max_length=MAX_PATH_LENGTH, description=_CURSOR)


class EdgeOut(BaseModel):
    from_: str = Field(alias="from")
    to: str
    count: int
    probability: float
    updated_at: str


class EdgeCursor(BaseModel):
    after_from: str
    after_to: str


class EdgesOut(BaseModel):
    seg: str
    edges: list[EdgeOut]
    next: EdgeCursor | None = Field(description="The next page's cursor; null on the last page")


def _flows(request: Request) -> FlowsFacility:
    return get_runtime(request).facility(FlowsFacility)


@api(
    "Ingest navigation events and page views (all or nothing)",
    body=EventsIn,
    response=EventsOut,
    tags=["flows"],
    responses={429: "Rate limited"},
    limits=[("ingest.ip", by_client_ip)],
)
async def ingest_events(request: Request) -> Response:
    ingested = await _flows(request).ingest(await parse_json(request))
    return json_response(
        {
            "accepted": ingested.accepted,
            "transitions": ingested.transitions,
            "ignored": ingested.ignored,
        }
    )


@api(
    "Bulk-load aggregated edge counts for a segment",
    body=EdgesIn,
    response=ImportOut,
    tags=["flows"],
    admin=True,
)
async def import_edges(request: Request) -> Response:
    flows = _flows(request)
    loaded = await flows.import_edges(await parse_json(request, flows.import_body_limit))
    return json_response({"seg": loaded.seg, "replace": loaded.replace, "edges": len(loaded.edges)})


@api(
    "List a segment's edges",
    query=EdgesQuery,
    response=EdgesOut,
    tags=["flows"],
    admin=True,
)
async def list_edges(request: Request) -> Response:
    query = parse_query(request, EdgesQuery)
    page = await _flows(request).list_edges(
        query.seg, limit=query.limit, after_from=query.after_from, after_to=query.after_to
    )
    edges = [
        {
            "from": r.from_path,
            "to": r.to_path,
            "count": r.count,
            "probability": r.probability,
            "updated_at": r.updated_at.isoformat(),
        }
        for r in page.edges
    ]
    nxt = page.next_after
    cursor = {"after_from": nxt[0], "after_to": nxt[1]} if nxt is not None else None
    return json_response({"seg": page.seg, "edges": edges, "next": cursor})


routes: list[BaseRoute] = [
    Route("/flows/events", ingest_events, methods=["POST"]),
    Route("/flows/edges", import_edges, methods=["POST"]),
    Route("/flows/edges", list_edges, methods=["GET"]),
]
