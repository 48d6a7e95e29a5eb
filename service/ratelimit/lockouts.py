"""Failure-counting lockouts over a store, with audit, metrics and the HTTP refusal.

Typical use in a login or OTP handler::

    await lockouts.ensure_unlocked("otp", phone)      # 429 locked_out while locked
    if code_is_right: await lockouts.success("otp", phone)
    else: await lockouts.failure("otp", phone)

Every lock (by the system) and every lift (by an operator) is written to the audit trail. A
store failure propagates as ``StateBackendError`` (503): lockouts guard authentication, so they
fail closed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from core.ratelimit import Catalog
from core.ratelimit.decision import ceil_seconds
from core.ratelimit.texts import LOCKED_OUT, text
from service.errors import ApiError
from service.logging import get_logger
from service.ratelimit import metrics
from service.ratelimit.base import ActiveLock, LockoutStore

log = get_logger("kervan.lockouts")

#: ``(actor, action, subject, details)`` -> written to the audit trail.
AuditSink = Callable[[str, str, str, dict[str, Any]], Awaitable[None]]

SYSTEM_ACTOR = "system"


@dataclass(frozen=True, slots=True)
class LockStatus:
    locked: bool
    retry_after: int  # microseconds until the lock ends (0 when not locked)
    failures: int
    level: int

    @property
    def retry_after_seconds(self) -> int:
        return ceil_seconds(self.retry_after)


def _subject(rule: str, key: str) -> str:
    return f"lockout:{rule}:{key}"


class Lockouts:
    def __init__(self, catalog: Catalog, store: LockoutStore, audit: AuditSink) -> None:
        self.catalog = catalog
        self.store = store
        self._audit = audit

    async def status(self, rule_name: str, key: str) -> LockStatus:
        rule = self.catalog.lockout(rule_name)
        state, now = await self.store.state(rule, key)
        locked = state.locked(now)
        level = state.level if state.level_expires > now else 0
        failures = state.failures if state.window_ends > now else 0
        return LockStatus(locked, state.locked_until - now if locked else 0, failures, level)

    async def ensure_unlocked(
        self, rule_name: str, key: str, accept_language: str | None = None
    ) -> None:
        """Raise the 429 ``locked_out`` answer while ``key`` is locked under ``rule_name``.

        ``accept_language`` (the request's header) picks the message's language.
        """
        status = await self.status(rule_name, key)
        if status.locked:
            seconds = status.retry_after_seconds
            raise ApiError(
                429,
                "locked_out",
                text(LOCKED_OUT, accept_language),
                {"retry_after": seconds},
                {"Retry-After": str(seconds)},
            )

    async def failure(self, rule_name: str, key: str) -> LockStatus:
        rule = self.catalog.lockout(rule_name)
        outcome = await self.store.failure(rule, key)
        state, now = outcome.state, outcome.now
        if outcome.locked_now:
            metrics.LOCKS.labels(rule.name).inc()
            duration = state.locked_until - now
            log.warning(
                "lockout %s locked a key for %ss (level %s)",
                rule.name,
                ceil_seconds(duration),
                state.level,
            )
            await self._audit(
                SYSTEM_ACTOR,
                "lockout.locked",
                _subject(rule.name, key),
                {
                    "rule": rule.name,
                    "key": key,
                    "level": state.level,
                    "locked_until_us": state.locked_until,
                    "duration_seconds": ceil_seconds(duration),
                },
            )
        locked = state.locked(now)
        return LockStatus(
            locked, state.locked_until - now if locked else 0, state.failures, state.level
        )

    async def success(self, rule_name: str, key: str) -> None:
        await self.store.success(self.catalog.lockout(rule_name), key)

    async def active_locks(self, limit: int = 100) -> tuple[list[ActiveLock], int]:
        locks, now = await self.store.active_locks(limit)
        return locks, now

    async def refresh_gauge(self) -> int:
        count = await self.store.count_active()
        metrics.LOCKS_ACTIVE.set(count)
        return count

    async def unlock(self, rule_name: str, key: str, *, actor: str) -> bool:
        """Lift a lock (operator action, audited); whether a lock was in force."""
        rule = self.catalog.lockout(rule_name)
        lifted = await self.store.unlock(rule, key)
        if lifted:
            log.info("lockout %s lifted by %s", rule.name, actor)
            await self._audit(
                actor, "lockout.unlocked", _subject(rule.name, key), {"rule": rule.name, "key": key}
            )
        return lifted
