"""What happens to a job after an attempt: the single place the retry rules are written down."""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from core.jobs.backoff import BackoffPolicy
from core.jobs.model import AttemptOutcome, Job


class DecisionKind(enum.StrEnum):
    COMPLETE = "complete"
    RETRY = "retry"  # attempt consumed, run again after a backoff delay
    DEFER = "defer"  # attempt given back, run again after the requested delay
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Decision:
    kind: DecisionKind
    delay: float = 0.0
    consume_attempt: bool = True
    reason: str = ""


def decide(
    job: Job,
    outcome: AttemptOutcome,
    *,
    policy: BackoffPolicy,
    rng: random.Random,
    defer_seconds: float = 0.0,
    reason: str = "",
) -> Decision:
    """Map the outcome of an attempt to the job's next step."""
    if outcome is AttemptOutcome.SUCCEEDED:
        return Decision(DecisionKind.COMPLETE)
    if outcome in (AttemptOutcome.DEFERRED, AttemptOutcome.RELEASED):
        return Decision(
            DecisionKind.DEFER, delay=max(0.0, defer_seconds), consume_attempt=False, reason=reason
        )
    if outcome in (AttemptOutcome.PERMANENT, AttemptOutcome.EXPIRED):
        return Decision(DecisionKind.DEAD, reason=reason)
    if job.is_last_attempt:
        return Decision(DecisionKind.DEAD, reason=reason)
    return Decision(DecisionKind.RETRY, delay=policy.delay(job.attempt, rng), reason=reason)
