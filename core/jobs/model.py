"""The job as a handler and the worker see it, and the record of one attempt."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    DEAD = "dead"


class AttemptOutcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # an ordinary error: retried with backoff while attempts remain
    TIMED_OUT = "timed_out"
    DEFERRED = "deferred"  # RetryLater: rescheduled without consuming an attempt
    PERMANENT = "permanent"  # PermanentFailure: dead-lettered at once
    RELEASED = "released"  # given back on shutdown, attempt not consumed
    EXPIRED = "expired"  # its lease ran out after the final attempt (the worker died)


@dataclass(slots=True)
class Job:
    """One claimed job.

    ``attempt`` is the number of the attempt now running (1-based): backends count an attempt
    as consumed when the job is claimed, so a worker that dies mid-job still uses one up and a
    job that crashes every worker cannot loop forever. ``lease`` is a fencing token that grows
    with every claim; a backend only accepts the outcome reported under the current lease, so a
    worker whose lease expired cannot overwrite the result of the worker that took over.
    """

    key: str
    queue: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    enqueued_at: float
    lease: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    receipt: str = ""  # backend-specific handle of the claim (stream entry id, row id)
    timeout: float | None = None  # set at enqueue: overrides the queue's job timeout

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts

    @property
    def over_budget(self) -> bool:
        """Claimed again after its final attempt: the previous holder died or timed out."""
        return self.attempt > self.max_attempts
