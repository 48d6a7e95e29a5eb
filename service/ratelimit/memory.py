"""In-process stores: the compiled GCRA table and a bounded dictionary of lockout states."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from core.clock import Clock, SystemClock
from core.ratelimit import (
    Decision,
    LockoutRule,
    LockoutState,
    Policy,
    record_failure,
    record_success,
)
from native.gcra import GcraTable
from native.limiter import Counters, LimiterFront
from service.ratelimit.base import ActiveLock, LockoutOutcome, to_micros

_new_decision = tuple.__new__


class MemoryGcraStore:
    """One compiled table per policy, each bounded to ``capacity`` keys.

    Separate tables let the caller's key string be the table key as is (no concatenation, and
    its cached hash is reused), which is most of the cost of a check from Python.
    """

    kind = "memory"

    def __init__(self, clock: Clock, capacity: int) -> None:
        # The system clock's method only wraps time.time; calling the builtin saves a frame.
        self._clock = clock
        self._now: Callable[[], float] = time.time if isinstance(clock, SystemClock) else clock.now
        self._capacity = capacity
        self.tables: dict[str, GcraTable] = {}
        self._checks: dict[str, Callable[[str, int, int, int, int], tuple[bool, int, int, int]]]
        self._checks = {}

    def _table(self, policy: Policy) -> GcraTable:
        table = self.tables.get(policy.name)
        if table is None:
            table = self.tables[policy.name] = GcraTable(self._capacity)
            self._checks[policy.name] = table.check_trusted
        return table

    def check_now(self, policy: Policy, key: str, cost: int) -> Decision:
        """One check of any ``Policy`` (the queue's pacing policies, which are not in the
        catalog); the limiter's catalog policies go through the compiled ``front`` instead."""
        check = self._checks.get(policy.name)
        if check is None:
            check = self._table(policy).check_trusted
        allowed, remaining, retry_after, reset_after = check(
            key, round(self._now() * 1_000_000), policy.interval, policy.burst, cost
        )
        # tuple.__new__ skips the named tuple's Python-level __new__ (half the creation cost).
        return _new_decision(
            Decision, (policy, allowed, remaining, retry_after, reset_after, False)
        )

    async def check(self, policy: Policy, key: str, cost: int) -> Decision:
        return self.check_now(policy, key, cost)

    def front(
        self,
        policies: Iterable[tuple[Policy, Counters]],
        on_unknown: Callable[[str], object],
        on_shadow: Callable[[Decision], object],
    ) -> LimiterFront[Decision]:
        """A compiled front over this store's tables (same state as ``check``): the limiter's
        whole synchronous check in one C call, reading the system clock in C."""
        front = LimiterFront(
            Decision,
            None if isinstance(self._clock, SystemClock) else self._clock.now,
            on_unknown,
            on_shadow,
        )
        for policy, counters in policies:
            front.add(
                policy.name,
                policy,
                interval=policy.interval,
                burst=policy.burst,
                shadow=policy.shadow,
                table=self._table(policy),
                counters=counters,
            )
        return front

    async def reset(self, policy: Policy, key: str) -> None:
        self._table(policy).remove(key)

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

    async def count_active(self) -> int:
        now = self._now()
        return sum(1 for state in self._states.values() if state.locked(now))
