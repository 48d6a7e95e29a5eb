"""Pure job-queue domain: the job model, retry decisions, backoff and the circuit breaker.

Nothing here performs I/O; the queue backends and the worker in ``service/queue`` drive it.
"""

from __future__ import annotations

from core.jobs.backoff import BackoffPolicy, full_jitter_delay
from core.jobs.breaker import BreakerConfig, BreakerState, CircuitBreaker
from core.jobs.decision import Decision, DecisionKind, decide
from core.jobs.model import AttemptOutcome, Job, JobStatus
from core.jobs.signals import PermanentFailure, RetryLater

__all__ = [
    "AttemptOutcome",
    "BackoffPolicy",
    "BreakerConfig",
    "BreakerState",
    "CircuitBreaker",
    "Decision",
    "DecisionKind",
    "Job",
    "JobStatus",
    "PermanentFailure",
    "RetryLater",
    "decide",
    "full_jitter_delay",
]
