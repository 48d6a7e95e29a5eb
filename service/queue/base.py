"""The one job-queue interface both backends (SQL outbox, Redis Streams) implement.

Delivery is at least once: a job is claimed under a lease and handed out again when the lease
runs out (its worker died). Handlers must therefore be safe to retry; outcomes are fenced by
the job's lease so that a worker that lost its lease cannot overwrite its successor's result.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from core.errors import ValidationFailed
from core.jobs import Job
from service.queue.config import QueueConfig

QUEUE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
MAX_KEY_CHARS = 191


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    ready: int  # waiting to run now (the backlog KEDA scales on)
    delayed: int  # scheduled for later (backoff, deferral, delayed enqueue)
    running: int
    dead: int
    oldest_ready_age: float  # seconds the oldest ready job has waited; 0 when none


@dataclass(frozen=True, slots=True)
class DeadLetter:
    key: str
    queue: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    last_error: str
    enqueued_at: float
    died_at: float
    history: list[dict[str, Any]] = field(default_factory=list)


def check_queue_name(queue: str) -> str:
    if not QUEUE_NAME.match(queue):
        raise ValidationFailed(
            "queue names are 1-64 characters of a-z, 0-9, '_', '.', '-'",
            details={"queue": queue},
        )
    return queue


def check_job_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_CHARS or not key.isprintable():
        raise ValidationFailed(
            f"job keys are 1-{MAX_KEY_CHARS} printable characters", details={"key": key[:200]}
        )
    return key


def check_job_timeout(timeout: float | None, config: QueueConfig) -> None:
    # A job may run only while its lease holds: beyond the visibility timeout another worker
    # would take it over mid-run and the provider would see it twice.
    if timeout is not None and not 0 < timeout < config.visibility_timeout:
        raise ValidationFailed(
            "a job timeout must be positive and shorter than the visibility timeout",
            details={"timeout": timeout, "visibility_timeout": config.visibility_timeout},
        )


def check_enqueue(
    queue: str,
    payload: dict[str, Any],
    key: str,
    max_attempts: int | None,
    config: QueueConfig,
    timeout: float | None = None,
) -> int:
    """Validate an enqueue call; returns the job's attempt budget."""
    check_queue_name(queue)
    check_job_key(key)
    if not isinstance(payload, dict):
        raise ValidationFailed("a job payload must be a JSON object")
    try:
        orjson.dumps(payload)
    except TypeError as exc:
        raise ValidationFailed(f"the job payload is not JSON-serialisable: {exc}") from None
    attempts = config.default_max_attempts if max_attempts is None else max_attempts
    if attempts < 1:
        raise ValidationFailed("max_attempts must be at least 1")
    check_job_timeout(timeout, config)
    return attempts


def history_entry(job: Job, *, at: float, error: str, outcome: str) -> dict[str, Any]:
    return {"attempt": job.attempt, "at": at, "outcome": outcome, "error": error[:500]}


class JobQueue(ABC):
    """A durable queue of jobs identified by caller-chosen keys."""

    kind: str  # "sql" or "redis"

    @abstractmethod
    async def enqueue(
        self,
        queue: str,
        payload: dict[str, Any],
        *,
        key: str,
        delay: float = 0.0,
        max_attempts: int | None = None,
        timeout: float | None = None,
        conn: AsyncConnection | None = None,
    ) -> bool:
        """Add a job; False (and nothing changed) when a job with ``key`` is already known.

        ``timeout`` bounds each attempt of this job (instead of the queue's default); it
        travels with the job and must be shorter than the visibility timeout.

        With ``conn`` the job is written in the caller's transaction: it exists if and only if
        the caller's business row commits (transactional outbox).
        """

    @abstractmethod
    async def claim(
        self, queues: Sequence[str], limit: int, *, worker_id: str, wait: float = 0.0
    ) -> list[Job]:
        """Take up to ``limit`` ready jobs, waiting at most ``wait`` seconds for one to appear.

        Each claimed job has consumed one attempt and is leased for the visibility timeout.
        """

    @abstractmethod
    async def complete(self, job: Job) -> bool:
        """Mark the job done; False when the lease was lost (another worker holds the job)."""

    @abstractmethod
    async def retry(
        self, job: Job, *, delay: float, consume_attempt: bool, error: str, outcome: str
    ) -> bool:
        """Schedule the job again after ``delay``; with ``consume_attempt=False`` the attempt
        taken by the claim is given back (deferral, shutdown release)."""

    @abstractmethod
    async def dead_letter(self, job: Job, *, error: str, outcome: str) -> bool:
        """Move the job to the dead letters with its attempt history."""

    @abstractmethod
    async def stats(self, queues: Sequence[str]) -> list[QueueStats]: ...

    @abstractmethod
    async def dead_letters(
        self, *, queue: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[DeadLetter]:
        """Dead letters, most recent first."""

    @abstractmethod
    async def get_dead_letter(self, key: str) -> DeadLetter | None: ...

    @abstractmethod
    async def replay(self, key: str) -> bool:
        """Queue a dead letter again with a fresh attempt budget; False if there is none."""

    @abstractmethod
    async def discard(self, key: str) -> bool:
        """Drop a dead letter for good; False if there is none."""

    @abstractmethod
    async def purge_finished(self, older_than: float) -> int:
        """Forget finished jobs (their keys stop deduplicating) finished before ``older_than``."""

    async def close(self) -> None:
        return None

    async def retire(self, worker_id: str, queues: Sequence[str]) -> None:  # noqa: B027
        """Forget a stopping worker's identity where the backend keeps one (consumer names)."""

    def wake(self) -> None:  # noqa: B027 - optional hook, most backends need nothing
        """Hint from an in-process enqueue that polling workers should look now."""
