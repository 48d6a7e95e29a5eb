"""Flow ingestion and the edge store's admin API.

``POST /flows/events`` (front ends, rate limited per client IP): up to 1,000 navigation events
``{seg, from, to}`` and/or page views ``{session_id, seg, path, ts}``, accepted whole or refused
whole with every bad index listed. ``POST /flows/edges`` and ``GET /flows/edges`` (admin) load and
list aggregated counts, e.g. from analytics exports.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core.errors import ValidationFailed
from core.flows.events import MAX_BATCH, PageView, pair_page_views, parse_batch
from core.flows.paths import MAX_PATH_LENGTH, normalize_path
from core.flows.segments import validate_segment
from service.db.types import utcnow
from service.endpoint import api
from service.errors import ApiError
from service.ratelimit import by_client_ip
from service.responses import json_response
from service.routes.speculation import speculation_cache
from service.runtime import get_runtime
from service.settings import Settings
from service.speculation import sessions, store
from service.speculation.metrics import FLOW_EVENTS
from service.validation import parse_json, parse_query, validate

MAX_IMPORT_EDGES = 20_000
MAX_EDGE_COUNT = 10**12
EDGE_PAGE_MAX = 5000


class NavigationIn(BaseModel):
    seg: str = Field(max_length=8, examples=["en-d"])
    from_: str = Field(alias="from", max_length=2048)
    to: str = Field(max_length=2048)


class PageViewIn(BaseModel):
    session_id: str = Field(min_length=8, max_length=64)
    seg: str = Field(max_length=8)
    path: str = Field(max_length=2048)
    ts: float = Field(description="Unix seconds of the page view")


class EventsIn(BaseModel):
    events: list[NavigationIn | PageViewIn] = Field(max_length=MAX_BATCH)


class EventsOut(BaseModel):
    accepted: int
    transitions: int
    ignored: int


class EdgeIn(BaseModel):
    from_: str = Field(alias="from", max_length=2048)
    to: str = Field(max_length=2048)
    count: int = Field(ge=1, le=MAX_EDGE_COUNT)


class EdgesIn(BaseModel):
    seg: str = Field(max_length=8)
    replace: bool = Field(default=False, description="Replace the segment's edges")
    edges: list[EdgeIn] = Field(max_length=MAX_IMPORT_EDGES)


class EdgesQuery(BaseModel):
    seg: str = Field(max_length=8)
    limit: int = Field(default=1000, ge=1, le=EDGE_PAGE_MAX)
    after_from: str | None = Field(default=None, max_length=MAX_PATH_LENGTH)
    after_to: str | None = Field(default=None, max_length=MAX_PATH_LENGTH)


class EdgeOut(BaseModel):
    from_: str = Field(alias="from")
    to: str
    count: int
    probability: float
    updated_at: str


class EdgesOut(BaseModel):
    seg: str
    edges: list[EdgeOut]
    next: dict[str, str] | None


def _origins(settings: Settings) -> set[str]:
    return {settings.public_origin, *settings.allowed_origins}


def _items(body: Any, key: str, limit: int) -> list[Any]:
    if not isinstance(body, dict) or not isinstance(body.get(key), list):
        raise ApiError(
            422,
            "validation_failed",
            f"the body must be an object with a '{key}' array",
            [{"field": f"body.{key}", "message": "required array"}],
        )
    items: list[Any] = body[key]
    if len(items) > limit:
        raise ApiError(
            422,
            "validation_failed",
            f"at most {limit} {key} per request",
            [{"field": f"body.{key}", "message": f"{len(items)} > {limit}"}],
        )
    return items


@api(
    "Ingest navigation events and page views (all or nothing)",
    body=EventsIn,
    response=EventsOut,
    tags=["flows"],
    responses={429: "Rate limited"},
    limits=[("ingest.ip", by_client_ip)],
)
async def ingest_events(request: Request) -> Response:
    runtime = get_runtime(request)
    settings = runtime.settings
    items = _items(await parse_json(request), "events", MAX_BATCH)
    batch = parse_batch(
        items, settings.speculation_segments, _origins(settings), runtime.clock.now()
    )
    navigations = list(batch.navigations)
    changed: dict[str, PageView] = {}
    if batch.page_views:
        last = await sessions.last_views(runtime.backends, (v.session_id for v in batch.page_views))
        paired, changed = pair_page_views(
            batch.page_views, last, settings.speculation_session_ttl_seconds
        )
        navigations += paired
    counts: Counter[tuple[str, str, str]] = Counter(
        (n.seg, n.from_path, n.to_path) for n in navigations if n.from_path != n.to_path
    )
    await store.add_transitions(runtime.db, counts, utcnow())
    if changed:
        # After the edges are stored: a failed write leaves the sessions as they were.
        await sessions.remember(runtime.backends, changed, settings.speculation_session_ttl_seconds)
    transitions = sum(counts.values())
    ignored = len(batch.navigations) - sum(1 for n in batch.navigations if n.from_path != n.to_path)
    FLOW_EVENTS.labels("navigation", "counted").inc(len(batch.navigations) - ignored)
    FLOW_EVENTS.labels("navigation", "ignored").inc(ignored)
    FLOW_EVENTS.labels("page_view", "counted").inc(len(batch.page_views))
    return json_response({"accepted": len(items), "transitions": transitions, "ignored": ignored})


def _parse_import(body: Any, settings: Settings) -> tuple[str, bool, dict[tuple[str, str], int]]:
    if not isinstance(body, dict):
        raise ApiError(422, "validation_failed", "the body must be an object")
    seg_raw = body.get("seg")
    replace = body.get("replace", False)
    errors: list[dict[str, Any]] = []
    try:
        seg = validate_segment(
            seg_raw if isinstance(seg_raw, str) else "", settings.speculation_segments
        )
    except ValidationFailed as exc:
        errors.append({"field": "body.seg", "message": exc.message})
        seg = ""
    if not isinstance(replace, bool):
        errors.append({"field": "body.replace", "message": "must be a boolean"})
    items = _items(body, "edges", MAX_IMPORT_EDGES)
    origins = _origins(settings)
    edges: Counter[tuple[str, str]] = Counter()
    for index, item in enumerate(items):
        try:
            edge = validate(EdgeIn, item, f"edges.{index}")
            a = normalize_path(edge.from_, origins)
            b = normalize_path(edge.to, origins)
        except ApiError as exc:
            errors.append({"index": index, "message": exc.message, "details": exc.details})
            continue
        except ValidationFailed as exc:
            errors.append({"index": index, "message": exc.message})
            continue
        if a != b:
            edges[(a, b)] += edge.count
    if errors:
        raise ApiError(
            422,
            "validation_failed",
            f"{len(errors)} problem(s) in the import; nothing was stored",
            errors,
        )
    if any(n > MAX_EDGE_COUNT for n in edges.values()):
        raise ApiError(422, "validation_failed", f"an edge's count exceeds {MAX_EDGE_COUNT}")
    return seg, bool(replace), dict(edges)


@api(
    "Bulk-load aggregated edge counts for a segment",
    body=EdgesIn,
    tags=["flows"],
    admin=True,
)
async def import_edges(request: Request) -> Response:
    runtime = get_runtime(request)
    limit = max(runtime.settings.max_body_bytes, 8 * 1024 * 1024)
    seg, replace, edges = _parse_import(await parse_json(request, limit), runtime.settings)
    await store.load_edges(runtime.db, seg, edges, replace=replace, now=utcnow())
    # An import is a deliberate change: serve it without waiting for the next refresh round.
    speculation_cache(runtime).refresh_soon(seg)
    return json_response({"seg": seg, "replace": replace, "edges": len(edges)})


@api("List a segment's edges", query=EdgesQuery, response=EdgesOut, tags=["flows"], admin=True)
async def list_edges(request: Request) -> Response:
    runtime = get_runtime(request)
    query = parse_query(request, EdgesQuery)
    seg = validate_segment(query.seg, runtime.settings.speculation_segments)
    after: tuple[str, str] | None = None
    if query.after_from is not None and query.after_to is not None:
        after = (query.after_from, query.after_to)
    elif query.after_from is not None or query.after_to is not None:
        raise ApiError(422, "validation_failed", "after_from and after_to go together")
    rows = await store.list_edges(runtime.db, seg, limit=query.limit, after=after)
    page = [
        {
            "from": r.from_path,
            "to": r.to_path,
            "count": r.count,
            "probability": r.probability,
            "updated_at": r.updated_at.isoformat(),
        }
        for r in rows
    ]
    nxt = (
        {"after_from": rows[-1].from_path, "after_to": rows[-1].to_path}
        if len(rows) == query.limit
        else None
    )
    return json_response({"seg": seg, "edges": page, "next": nxt})


routes: list[BaseRoute] = [
    Route("/flows/events", ingest_events, methods=["POST"]),
    Route("/flows/edges", import_edges, methods=["POST"]),
    Route("/flows/edges", list_edges, methods=["GET"]),
]
