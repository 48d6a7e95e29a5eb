"""Public entry to the edge's compiled hot path (``native._edgepath``).

``AccessLines`` buffers access log lines and formats them (byte for byte the ``orjson`` dump of
the Python path, ``tests/reference/edgepath_ref.py``); ``observe`` counts one answered request
into ``service.metrics.HttpStats``' dicts; ``timestamp(ms)`` is the logs' ISO 8601 UTC time.

``fast_front(slow, general, request_id_var, request_type)`` makes the RSGI target that answers
the edge's fast routes in C (``service/rsgi/app.py`` wires it): it checks its collaborators
once here, so that the per-request path checks nothing a Python frame would have to.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from native import _edgepath

AccessLines = _edgepath.AccessLines
FastFront = _edgepath.FastFront
AsgiFront = _edgepath.AsgiFront
PASS = _edgepath.PASS
HeldReply = _edgepath.HeldReply
observe = _edgepath.observe
timestamp = _edgepath.timestamp
monotonic = _edgepath.monotonic
HTTP_LATENCY_BUCKETS = _edgepath.HTTP_LATENCY_BUCKETS
valid_request_id = _edgepath.valid_request_id
peer_host = _edgepath.peer_host


def _ids() -> tuple[str, int]:
    """A front's request-id prefix (random per front) and first counter value."""
    return os.urandom(8).hex(), int.from_bytes(os.urandom(4), "big")


def _check(
    general: Callable[..., Awaitable[None]],
    request_id_var: ContextVar[str | None],
    request_type: Callable[[str, Any], Any],
) -> None:
    if not inspect.iscoroutinefunction(general):
        raise TypeError("general must be a coroutine function")
    if not isinstance(request_id_var, ContextVar):
        raise TypeError("request_id_var must be a ContextVar")
    if not callable(request_type):
        raise TypeError("request_type must be callable")


def fast_front(
    slow: Any,
    general: Callable[..., Awaitable[None]],
    request_id_var: ContextVar[str | None],
    request_type: Callable[[str, Any], Any],
) -> FastFront:
    """The compiled front over the RSGI app ``slow`` (it serves what the front hands back;
    ``general(scope, protocol, path, route, headers, started, decision)`` carries on a fast
    route's request the front began). Request ids: a random per-front prefix and counter."""
    if not callable(slow) or not hasattr(slow, "__rsgi_init__"):
        raise TypeError("slow must be an RSGI application with __rsgi_init__")
    _check(general, request_id_var, request_type)
    return _edgepath.FastFront(slow, general, request_id_var, request_type, *_ids())


def asgi_front(
    slow: Any,
    general: Callable[..., Awaitable[None]],
    request_id_var: ContextVar[str | None],
    request_type: Callable[[str, Any], Any],
) -> AsgiFront:
    """The compiled front over the ASGI app ``slow`` (``general(scope, receive, send,
    decided)`` carries on a fast route's request the front began); see ``fast_front``."""
    if not callable(slow):
        raise TypeError("slow must be an ASGI application")
    _check(general, request_id_var, request_type)
    return _edgepath.AsgiFront(slow, general, request_id_var, request_type, *_ids())


__all__ = [
    "HTTP_LATENCY_BUCKETS",
    "PASS",
    "AccessLines",
    "AsgiFront",
    "FastFront",
    "HeldReply",
    "asgi_front",
    "fast_front",
    "monotonic",
    "observe",
    "peer_host",
    "timestamp",
    "valid_request_id",
]
