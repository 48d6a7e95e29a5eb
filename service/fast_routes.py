"""Hot GET paths a feature answers from memory, ahead of the general router.

A handler is a synchronous function of the request (its query string and a header lookup) that
returns the whole answer, or ``None`` to let the request take the general route (to have its
query validated with full error details, or to compute an answer not held yet). The edge
(``service/edge.py``) adds the same protections to both kinds of answers, under either server
interface: the request a handler sees is the same whether it came over ASGI or RSGI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from native.edgepath import HeldReply

Header = tuple[bytes, bytes]


class HeaderLookup(Protocol):
    def get(self, key: str, default: None = None) -> str | None:
        """The first value of the field ``key`` (a lower-case name), or ``None``."""


class AsgiHeaders:
    """``HeaderLookup`` over an ASGI scope's header list (RSGI's ``scope.headers`` is one)."""

    __slots__ = ("_raw",)

    def __init__(self, raw: Iterable[Header]) -> None:
        self._raw = raw

    def get(self, key: str, default: None = None) -> str | None:
        name = key.encode("latin-1")
        for found, value in self._raw:
            if found == name:
                return value.decode("latin-1")
        return default


class FastRequest:
    """What a fast handler may read of a request."""

    __slots__ = ("headers", "query")

    def __init__(self, query: str, headers: HeaderLookup) -> None:
        #: The query string as sent (still percent-encoded), without the ``?``.
        self.query = query
        self.headers = headers


@dataclass(frozen=True, slots=True)
class FastReply:
    """A whole answer. ``headers`` may be one prebuilt list shared by many replies (RSGI keeps
    its converted form by identity), so it is never changed once returned."""

    status: int
    headers: list[Header]
    body: bytes


FastHandler = Callable[[FastRequest], FastReply | None]


@dataclass(frozen=True, slots=True)
class FastRoute:
    #: The route template, as the general route labels the request's metrics.
    template: str
    handler: FastHandler
    #: Query string -> the reply held for it (``native.edgepath.HeldReply``: the handler's
    #: answer, valid while its source still holds the same value), which the compiled RSGI
    #: front sends without calling the handler; the handler fills it, or leaves it empty.
    held: dict[str, HeldReply] = field(default_factory=dict)
