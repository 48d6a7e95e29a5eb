"""Serving a segment's Speculation Rules: the cached answer, or "not modified" for a client that
already holds it (``If-None-Match``), counted per segment and status."""

from __future__ import annotations

from dataclasses import dataclass

from core.flows.segments import validate_segment
from service.speculation.cache import SpeculationCache
from service.speculation.metrics import RESPONSES, RULES_SERVED


@dataclass(frozen=True, slots=True)
class RulesReply:
    #: The rules JSON; None when the client's copy is current (304).
    body: bytes | None
    headers: dict[str, str]


def etag_matches(header: str | None, etag: str) -> bool:
    """``If-None-Match`` uses the weak comparison (RFC 9110 13.1.2): ``W/`` is ignored."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


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
