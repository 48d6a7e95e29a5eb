"""The answer of one rate-limit check, exact to the microsecond."""

from __future__ import annotations

from typing import NamedTuple

from core.ratelimit.policy import Policy

MICROS = 1_000_000


def ceil_seconds(micros: int) -> int:
    return -(-micros // MICROS)


class Decision(NamedTuple):
    """``allowed`` is the algorithm's verdict; ``refused`` whether to refuse the request.

    A shadow policy reports ``allowed=False`` when it would refuse but never enforces it. When
    the backend failed, ``degraded`` is set and ``allowed`` follows the policy's failure mode.
    A named tuple: built on every check, it must be cheap to create.
    """

    policy: Policy
    allowed: bool
    remaining: int
    retry_after: int  # microseconds until a request of the same cost would be allowed
    reset_after: int  # microseconds until the bucket is full again
    degraded: bool = False

    @property
    def refused(self) -> bool:
        """Whether the request must be refused (a shadow policy never refuses)."""
        return not self.allowed and not self.policy.shadow

    @property
    def retry_after_seconds(self) -> int:
        """``Retry-After`` value: whole seconds, rounded up so a client never retries early."""
        return ceil_seconds(self.retry_after)

    @property
    def reset_after_seconds(self) -> int:
        return ceil_seconds(self.reset_after)


def decision_from_tat(
    policy: Policy, *, allowed: bool, tat: int, now: int, cost: int, degraded: bool = False
) -> Decision:
    """Derive a decision from the raw outcome the Redis script returns.

    ``tat`` is the stored arrival time after an allowed check, or the current one
    (``max(stored, now)``) after a refusal; the arithmetic matches ``native/_gcra.pyx``.
    """
    interval = policy.interval
    tolerance = interval * policy.burst
    if allowed:
        return Decision(policy, True, (now + tolerance - tat) // interval, 0, tat - now, degraded)
    retry = tat + cost * interval - tolerance - now
    remaining = max(0, now + tolerance - tat) // interval
    return Decision(policy, False, remaining, retry, tat - now, degraded)


#: A refusal for an unreachable backend asks to retry soon: the outage, not the client, is the
#: cause, and a slow policy's interval (12 minutes for 5/hour) would be far too long.
DEGRADED_RETRY_MAX = 5 * MICROS


def degraded_decision(policy: Policy, *, allowed: bool) -> Decision:
    """What a policy answers when its backend is unreachable (its failure mode decides)."""
    retry = 0 if allowed else min(policy.interval, DEGRADED_RETRY_MAX)
    return Decision(policy, allowed, 0, retry, 0, degraded=True)
