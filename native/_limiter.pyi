from collections.abc import Callable
from typing import Any

from native._gcra import GcraTable

class Counters:
    checks: int
    refused: int
    shadow_refused: int
    failures: int

class LimiterFront:
    def __init__(
        self,
        decision_type: type[tuple[Any, ...]],
        clock_now: Callable[[], float] | None,
        on_unknown: Callable[[str], object],
        on_shadow: Callable[[Any], object],
    ) -> None: ...
    def add(
        self,
        name: str,
        policy: object,
        interval: int,
        burst: int,
        shadow: bool,
        table: GcraTable,
        counters: Counters,
    ) -> None: ...
    def check(self, name: str, key: str, cost: int = 1) -> Any: ...
