"""Which requests are low priority: shed first in degrade mode.

Speculative prefetches (the browser may never show them), tracking dashboard queries (a person
can reload), and nothing else at the edge: webhooks, live support, signaling, sends, ingest and
the API keep going. Unrendered image variants and speculation refreshes are shed where they are
made (``service/images``, ``service/speculation``).

``shed_kinds`` answers the same question per documented operation (a path template and a
method), so the OpenAPI document states the 503 on exactly the operations the edge and the
image facility may shed.
"""

from __future__ import annotations

from collections.abc import Iterable

PREFETCH_HEADERS = (b"sec-purpose", b"purpose", b"x-purpose", b"x-moz")
#: Browsers prefetch with these methods only; a prefetch header on another is not a prefetch.
PREFETCH_METHODS = frozenset({"GET", "HEAD"})
#: Never shed, whatever the request carries: webhooks, live support and call signaling (one
#: socket, and the ICE servers a call starts with), sends.
PROTECTED_PREFIXES = ("/webhooks/", "/ws/", "/rtc/", "/admin/wa/send")
#: The operation that renders an image variant on demand (``service/images`` sheds the
#: render, a variant already on disk is still served).
IMAGE_VARIANT_PATH = "/img/{image_id}/{name}"


def is_prefetch(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    return any(name in PREFETCH_HEADERS and b"prefetch" in value.lower() for name, value in headers)


def protected(path: str) -> bool:
    return path.startswith(PROTECTED_PREFIXES)


def _dashboard(path: str) -> bool:
    return path.startswith("/t/sites/") and "/dashboard" in path


def low_priority_kind(
    path: str, headers: Iterable[tuple[bytes, bytes]], method: str = "GET"
) -> str | None:
    """The shed kind of a request (``prefetch``, ``dashboard``), or None to serve it."""
    if protected(path):
        return None
    if method in PREFETCH_METHODS and is_prefetch(headers):
        return "prefetch"
    if _dashboard(path):
        return "dashboard"
    return None


def shed_kinds(path_template: str, method: str) -> list[str]:
    """Every shed kind that may refuse the operation ``method path_template`` with 503."""
    if protected(path_template):
        return []
    kinds: list[str] = []
    if method in PREFETCH_METHODS:
        kinds.append("prefetch")
    if _dashboard(path_template):
        kinds.append("dashboard")
    if path_template == IMAGE_VARIANT_PATH and method in PREFETCH_METHODS:
        kinds.append("image_render")
    return kinds
