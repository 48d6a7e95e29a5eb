"""Runs queued jobs to completion in the test's own task, through the registered handlers, so
that a test sees exactly what each attempt did (no background worker, no sleeping)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.jobs import PermanentFailure, RetryLater
from service.runtime import Runtime


@dataclass(frozen=True)
class Attempt:
    queue: str
    key: str
    outcome: str  # done | deferred | retry | dead
    error: str = ""


async def drain(runtime: Runtime, queues: Sequence[str], *, max_rounds: int = 20) -> list[Attempt]:
    """Claims and runs ready jobs until none is ready (retries are made ready at once)."""
    queue = runtime.queue
    assert queue is not None, "the queue feature must be set up"
    attempts: list[Attempt] = []
    for _ in range(max_rounds):
        jobs = await queue.claim(list(queues), 10, worker_id="test")
        if not jobs:
            break
        for job in jobs:
            registration = runtime.handlers.get(job.queue)
            assert registration is not None, job.queue
            try:
                await registration.handler(job)
            except RetryLater as exc:
                await queue.retry(
                    job, delay=0, consume_attempt=False, error=str(exc), outcome="deferred"
                )
                attempts.append(Attempt(job.queue, job.key, "deferred", str(exc)))
            except PermanentFailure as exc:
                await queue.dead_letter(job, error=exc.reason, outcome="permanent")
                attempts.append(Attempt(job.queue, job.key, "dead", exc.reason))
            except Exception as exc:
                if job.is_last_attempt:
                    await queue.dead_letter(job, error=str(exc), outcome="failed")
                    attempts.append(Attempt(job.queue, job.key, "dead", str(exc)))
                else:
                    await queue.retry(
                        job, delay=0, consume_attempt=True, error=str(exc), outcome="failed"
                    )
                    attempts.append(Attempt(job.queue, job.key, "retry", str(exc)))
            else:
                await queue.complete(job)
                attempts.append(Attempt(job.queue, job.key, "done"))
    return attempts
