"""In-process stores: the compiled GCRA table and a bounded dictionary of lockout states."""

from __future__ import annotations

from core.clock import Clock
from core.ratelimit import (
    Decision,
    LockoutRule,
    LockoutState,
    Policy,
    record_failure,
    record_success,
)
from native.gcra import GcraTable
from service.ratelimit.base import ActiveLock, LockoutOutcome, to_micros

# Separates policy name and key inside the table; policy names cannot contain it.
_SEP = "\x1f"


class MemoryGcraStore:
    kind = "memory"

    def __init__(self, clock: Clock, capacity: int) -> None:
        self._clock = clock
        self.table = GcraTable(capacity)

    async def check(self, policy: Policy, key: str, cost: int) -> Decision:
        now = to_micros(self._clock.now())
        result = self.table.check(
            policy.name + _SEP + key, now, policy.interval, policy.burst, cost
        )
        return Decision(policy, *result)

    async def reset(self, policy: Policy, key: str) -> None:
        self.table.remove(policy.name + _SEP + key)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class MemoryLockoutStore:
    """Lockout states in a dict bounded to ``capacity`` keys.

    When full, expired states go first; if none expired, the oldest unlocked states go (an
    attacker spraying distinct keys then loses failure counts, never an active lock).
    """

    def __init__(self, clock: Clock, capacity: int) -> None:
        self._clock = clock
        self._capacity = capacity
        self._states: dict[tuple[str, str], LockoutState] = {}

    def _now(self) -> int:
        return to_micros(self._clock.now())

    def _get(self, rule: LockoutRule, key: str, now: int) -> LockoutState:
        state = self._states.get((rule.name, key))
        if state is None or state.expires_at() <= now:
            return LockoutState()
        return state

    def _make_room(self, now: int) -> None:
        for name in [n for n, s in self._states.items() if s.expires_at() <= now]:
            del self._states[name]
        if len(self._states) < self._capacity:
            return
        excess = len(self._states) - self._capacity + max(1, self._capacity // 8)
        doomed = [n for n, s in self._states.items() if not s.locked(now)][:excess]
        for name in doomed:
            del self._states[name]

    async def failure(self, rule: LockoutRule, key: str) -> LockoutOutcome:
        now = self._now()
        state, level = record_failure(rule, self._get(rule, key, now), now)
        if (rule.name, key) not in self._states and len(self._states) >= self._capacity:
            self._make_room(now)
        self._states[(rule.name, key)] = state
        return LockoutOutcome(state, now, level is not None)

    async def success(self, rule: LockoutRule, key: str) -> None:
        now = self._now()
        if (rule.name, key) in self._states:
            self._states[(rule.name, key)] = record_success(self._get(rule, key, now))

    async def state(self, rule: LockoutRule, key: str) -> tuple[LockoutState, int]:
        now = self._now()
        return self._get(rule, key, now), now

    async def unlock(self, rule: LockoutRule, key: str) -> bool:
        now = self._now()
        state = self._states.pop((rule.name, key), None)
        return state is not None and state.locked(now)

    async def active_locks(self, limit: int) -> tuple[list[ActiveLock], int]:
        now = self._now()
        locks = [
            ActiveLock(rule, key, state.locked_until)
            for (rule, key), state in self._states.items()
            if state.locked(now)
        ]
        locks.sort(key=lambda lock: (lock.until, f"{lock.rule}|{lock.key}"))
        return locks[:limit], now
