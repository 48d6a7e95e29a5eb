"""Hot GET paths a feature answers from memory, ahead of the general router.

A handler is a synchronous function of the ASGI scope that returns the whole answer, or ``None``
to let the request take the general route (to have its query validated with full error details,
or to compute an answer not held yet). The edge (``service/edge.py``) adds the same protections
to both kinds of answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import Scope

Header = tuple[bytes, bytes]


@dataclass(frozen=True, slots=True)
class FastReply:
    status: int
    headers: list[Header]
    body: bytes


FastHandler = Callable[[Scope], FastReply | None]


@dataclass(frozen=True, slots=True)
class FastRoute:
    #: The route template, as the general route labels the request's metrics.
    template: str
    handler: FastHandler
