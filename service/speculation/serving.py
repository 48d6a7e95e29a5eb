"""Serving a segment's Speculation Rules: the cached answer, or "not modified" for a client that
already holds it (``If-None-Match``), counted per segment and status."""

from __future__ import annotations

from dataclasses import dataclass

from core.flows.segments import validate_segment
from native.edgepath import HeldReply
from service.fast_routes import FastReply, FastRequest
from service.responses import etag_matches
from service.speculation.cache import Answer, SpeculationCache
from service.speculation.metrics import RULES

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
        RULES.not_modified(seg)
        return RulesReply(None, headers)
    RULES.served(seg, answer.prerender, answer.prefetch)
    return RulesReply(answer.body, headers)


class FastRules:
    """``GET /perf/speculation/dynamic?seg=<segment>`` answered from the cache as prebuilt
    bytes, ahead of the router. Any other query (a mode, an unknown or malformed segment) and a
    segment without an answer yet take the general route, which validates and computes."""

    def __init__(self, cache: SpeculationCache) -> None:
        settings = cache.settings
        #: The route's held replies (``FastRoute.held``): this handler's 200 answers by query.
        self.held: dict[str, HeldReply] = {}
        self.cache = cache
        self.mode = settings.speculation_mode
        self.segments = {seg: seg for seg in settings.speculation_segments}
        self.cache_control = (
            f"public, max-age={settings.speculation_cache_max_age_seconds}".encode()
        )
        #: seg -> (the answer, its 200 reply, its 304 reply), in the configured mode
        self._replies: dict[str, tuple[Answer, FastReply, FastReply, list[int]]] = {}

    def __call__(self, request: FastRequest) -> FastReply | None:
        query = request.query
        seg = self.segments.get(query[4:]) if query.startswith("seg=") else None
        if seg is None:
            return None
        answer = self.cache.cached(seg, self.mode)
        if answer is None:
            return None
        held = self._replies.get(seg)
        if held is None or held[0] is not answer:
            held = self._prebuild(answer)
        counts = held[3]
        if_none_match = request.headers.get("if-none-match")
        if if_none_match is not None and etag_matches(if_none_match, answer.etag):
            counts[1] += 1
            return held[2]
        counts[0] += 1
        counts[2] += answer.prerender
        counts[3] += answer.prefetch
        if query not in self.held or self.held[query].value is not answer:
            if len(self.held) >= len(self.segments):
                self.held.clear()  # answers of a refresh replace the old ones
            self.held[query] = HeldReply(
                self.cache.answers,
                (seg, self.mode),
                answer,
                held[1],
                counts,
                (1, 0, answer.prerender, answer.prefetch),
            )
        return held[1]

    def _prebuild(self, answer: Answer) -> tuple[Answer, FastReply, FastReply, list[int]]:
        """The two replies of ``answer`` (200 and 304), made once per answer: a reply is
        immutable and its header list is never changed once returned."""
        common = [(b"etag", answer.etag.encode()), (b"cache-control", self.cache_control)]
        ok = [
            *common,
            (b"content-length", str(len(answer.body)).encode()),
            (b"content-type", MEDIA_TYPE.encode()),
        ]
        held = (
            answer,
            FastReply(200, ok, answer.body),
            FastReply(304, common, b""),
            RULES.of(answer.seg),
        )
        self._replies[answer.seg] = held
        return held
