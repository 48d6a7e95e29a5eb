"""What operators do with rate limiting: list and lift lockouts, read the policies in force."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from core.ratelimit.decision import ceil_seconds
from service.ratelimit.limiter import RateLimiter


@dataclass(frozen=True, slots=True)
class LockView:
    rule: str
    key: str
    locked_until: datetime
    retry_after: int  # whole seconds until the lock ends


@dataclass(frozen=True, slots=True)
class PolicyView:
    name: str
    spec: str
    burst: int
    interval_seconds: float
    failure_mode: str
    shadow: bool


@dataclass(frozen=True, slots=True)
class RuleView:
    name: str
    spec: str


@dataclass(frozen=True, slots=True)
class PoliciesView:
    backend: str
    policies: list[PolicyView]
    lockouts: list[RuleView]


class LiftOutcome(Enum):
    LIFTED = "lifted"
    NOT_LOCKED = "not_locked"
    UNKNOWN_RULE = "unknown_rule"


class RateLimitAdmin:
    """The operators' view of one rate limiter."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    def lockout_rules(self) -> list[str]:
        return sorted(self.limiter.catalog.lockouts)

    async def active_locks(self, limit: int) -> list[LockView]:
        """Active locks, soonest to end first."""
        locks, now = await self.limiter.lockouts.active_locks(limit)
        return [
            LockView(
                rule=lock.rule,
                key=lock.key,
                locked_until=datetime.fromtimestamp(lock.until / 1_000_000, UTC),
                retry_after=ceil_seconds(lock.until - now),
            )
            for lock in locks
        ]

    async def lift(self, rule: str, key: str, *, actor: str) -> LiftOutcome:
        """Lift the lock of ``key`` under ``rule`` (audited by the lockouts)."""
        lockouts = self.limiter.lockouts
        if rule not in lockouts.catalog.lockouts:
            return LiftOutcome.UNKNOWN_RULE
        if not await lockouts.unlock(rule, key, actor=actor):
            return LiftOutcome.NOT_LOCKED
        return LiftOutcome.LIFTED

    def policies(self) -> PoliciesView:
        catalog = self.limiter.catalog
        return PoliciesView(
            backend=self.limiter.kind,
            policies=[
                PolicyView(
                    name=p.name,
                    spec=p.describe(),
                    burst=p.burst,
                    interval_seconds=p.interval / 1_000_000,
                    failure_mode=p.failure_mode.value,
                    shadow=p.shadow,
                )
                for p in catalog.policies.values()
            ],
            lockouts=[RuleView(name=r.name, spec=r.describe()) for r in catalog.lockouts.values()],
        )
