"""Which requests are low priority: shed first in degrade mode.

Speculative prefetches (the browser may never show them), tracking dashboard queries (a person
can reload), and nothing else at the edge: webhooks, live support, signaling, sends, ingest and
the API keep going. Unrendered image variants and speculation refreshes are shed where they are
made (``service/images``, ``service/speculation``)."""

from __future__ import annotations

from collections.abc import Iterable

PREFETCH_HEADERS = (b"sec-purpose", b"purpose", b"x-purpose", b"x-moz")


def is_prefetch(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    return any(name in PREFETCH_HEADERS and b"prefetch" in value.lower() for name, value in headers)


def low_priority_kind(path: str, headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The shed kind of a request (``prefetch``, ``dashboard``), or None to serve it."""
    if is_prefetch(headers):
        return "prefetch"
    if path.startswith("/t/sites/") and "/dashboard" in path:
        return "dashboard"
    return None
