"""The storage interfaces behind rate limiting and lockouts (memory and Redis implement both).

Stores answer in integer microseconds and raise ``core.errors.StateBackendError`` when their
backend fails; failure modes, shadow mode, metrics and audit live above them (``limiter.py``,
``lockouts.py``) so both implementations behave alike by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from core.ratelimit import Decision, LockoutRule, LockoutState, Policy

MICROS = 1_000_000


def to_micros(seconds: float) -> int:
    return round(seconds * MICROS)


class GcraStore(Protocol):
    kind: str

    async def check(self, policy: Policy, key: str, cost: int) -> Decision: ...

    async def reset(self, policy: Policy, key: str) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class LockoutOutcome:
    state: LockoutState
    now: int
    locked_now: bool  # this very failure locked the key


@dataclass(frozen=True, slots=True)
class ActiveLock:
    rule: str
    key: str
    until: int  # microseconds since the epoch


class LockoutStore(Protocol):
    async def failure(self, rule: LockoutRule, key: str) -> LockoutOutcome: ...

    async def success(self, rule: LockoutRule, key: str) -> None: ...

    async def state(self, rule: LockoutRule, key: str) -> tuple[LockoutState, int]:
        """The key's state and the store's current time (microseconds)."""
        ...

    async def unlock(self, rule: LockoutRule, key: str) -> bool:
        """Lift a lock and forget the key's history; whether a lock was active."""
        ...

    async def active_locks(self, limit: int) -> tuple[list[ActiveLock], int]:
        """Active locks, soonest to end first, and the store's current time."""
        ...

    async def count_active(self) -> int: ...
