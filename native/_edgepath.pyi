from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

HTTP_LATENCY_BUCKETS: tuple[float, ...]

def monotonic() -> float: ...
def valid_request_id(text: str) -> bool: ...
def peer_host(client: str) -> str: ...
def timestamp(ms: int) -> str: ...
def observe(
    requests: dict[tuple[str, str, int], int],
    latency: dict[tuple[str, str], tuple[list[int], list[float]]],
    method: str,
    route: str,
    status: int,
    elapsed: float,
) -> int: ...

class AccessLines:
    direct: bool
    dropping: bool
    scheduled: bool
    def __init__(self) -> None: ...
    @property
    def size(self) -> int: ...
    def record(
        self,
        method: str,
        path: str,
        route: str,
        status: int,
        elapsed: float,
        client_ip: str,
        request_id: str,
    ) -> int: ...
    def add(self, line: bytes) -> int: ...
    def take(self) -> bytes: ...

class HeldReply:
    source: dict[Any, Any]
    key: object
    value: object
    reply: Any
    counts: list[int]
    increments: tuple[int, ...]
    def __init__(
        self,
        source: dict[Any, Any],
        key: object,
        value: object,
        reply: Any,
        counts: list[int],
        increments: tuple[int, ...],
    ) -> None: ...

class FastFront:
    slow: Any
    def __init__(
        self,
        slow: Any,
        general: Callable[..., Awaitable[None]],
        request_id_var: ContextVar[str | None],
        request_type: Callable[[str, Any], Any],
        id_prefix: str,
        id_start: int,
    ) -> None: ...
    def configure(
        self,
        *,
        routes: dict[str, Any],
        http: Any,
        overload: Any,
        access_log: Any,
        lines: AccessLines,
        exempt: tuple[str, ...],
        own_cors: tuple[str, ...],
        limiter_check: Callable[[str, str], tuple[Any, ...]] | None,
        policy: str,
        policy_item: str,
        policy_shown: bool,
        origins: frozenset[str],
        cors_simple: list[tuple[str, str]],
        tail: list[tuple[str, str]],
        resolve_ip: Callable[[str, Any], str] | Callable[[Any], str] | None,
    ) -> None: ...
    def disable(self) -> None: ...
    def next_request_id(self) -> str: ...
    def __rsgi_init__(self, loop: Any) -> None: ...
    def __rsgi_del__(self, loop: Any) -> None: ...
    async def __call__(self, scope: Any, protocol: Any) -> None: ...
    def take(self, scope: Any, protocol: Any) -> Awaitable[None] | object | None: ...

PASS: object

class AsgiFront(FastFront):
    ready: type | None
    def take(self, scope: Any, protocol: Any) -> Awaitable[None] | object | None: ...
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None: ...  # type: ignore[override]
