"""Serving a segment's Speculation Rules: the cached answer, or "not modified" for a client that
already holds it (``If-None-Match``), counted per segment and status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.flows.segments import validate_segment
from service.fast_routes import FastReply, FastRequest, Header
from service.responses import etag_matches
from service.speculation.cache import Answer, SpeculationCache
from service.speculation.metrics import RESPONSES, RULES_SERVED

MEDIA_TYPE = "application/speculationrules+json"
#: The path the rules are served on (the route and the fast path).
RULES_PATH = "/perf/speculation/dynamic"


@dataclass(frozen=True, slots=True)
class RulesReply:
    #: The rules JSON; None when the client's copy is current (304).
    body: bytes | None
    headers: dict[str, str]


async def serve_rules(
    cache: SpeculationCache, seg: str, mode: str | None, if_none_match: str | None
) -> RulesReply:
    """The rules of ``seg`` (a configured segment) in ``mode`` (default: the setting)."""
    settings = cache.settings
    seg = validate_segment(seg, settings.speculation_segments)
    answer = await cache.get(seg, mode or settings.speculation_mode)
    headers = {
        "ETag": answer.etag,
        "Cache-Control": f"public, max-age={settings.speculation_cache_max_age_seconds}",
    }
    if etag_matches(if_none_match, answer.etag):
        RESPONSES.labels(seg, "304").inc()
        return RulesReply(None, headers)
    RESPONSES.labels(seg, "200").inc()
    RULES_SERVED.labels(seg, "prerender").inc(answer.prerender)
    RULES_SERVED.labels(seg, "prefetch").inc(answer.prefetch)
    return RulesReply(answer.body, headers)


class FastRules:
    """``GET /perf/speculation/dynamic?seg=<segment>`` answered from the cache as prebuilt
    bytes, ahead of the router. Any other query (a mode, an unknown or malformed segment) and a
    segment without an answer yet take the general route, which validates and computes."""

    def __init__(self, cache: SpeculationCache) -> None:
        settings = cache.settings
        self.cache = cache
        self.mode = settings.speculation_mode
        self.segments = {seg: seg for seg in settings.speculation_segments}
        self.cache_control = (
            f"public, max-age={settings.speculation_cache_max_age_seconds}".encode()
        )
        self._headers: dict[tuple[str, str], tuple[Answer, list[Header], list[Header]]] = {}
        self._counters: dict[str, tuple[Any, Any, Any, Any]] = {}

    def __call__(self, request: FastRequest) -> FastReply | None:
        query = request.query
        seg = self.segments.get(query[4:]) if query.startswith("seg=") else None
        if seg is None:
            return None
        answer = self.cache.cached(seg, self.mode)
        if answer is None:
            return None
        held = self._headers.get((seg, self.mode))
        if held is None or held[0] is not answer:
            held = self._prebuild(answer)
        ok, not_modified = held[1], held[2]
        counters = self._counters.get(seg) or self._count(seg)
        if_none_match = request.headers.get("if-none-match")
        if if_none_match is not None and etag_matches(if_none_match, answer.etag):
            counters[1].inc()
            return FastReply(304, not_modified, b"")
        counters[0].inc()
        counters[2].inc(answer.prerender)
        counters[3].inc(answer.prefetch)
        return FastReply(200, ok, answer.body)

    def _prebuild(self, answer: Answer) -> tuple[Answer, list[Header], list[Header]]:
        common = [(b"etag", answer.etag.encode()), (b"cache-control", self.cache_control)]
        ok = [
            *common,
            (b"content-length", str(len(answer.body)).encode()),
            (b"content-type", MEDIA_TYPE.encode()),
        ]
        held = (answer, ok, common)
        self._headers[answer.seg, answer.mode] = held
        return held

    def _count(self, seg: str) -> tuple[Any, Any, Any, Any]:
        counters = (
            RESPONSES.labels(seg, "200"),
            RESPONSES.labels(seg, "304"),
            RULES_SERVED.labels(seg, "prerender"),
            RULES_SERVED.labels(seg, "prefetch"),
        )
        self._counters[seg] = counters
        return counters
