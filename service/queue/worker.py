"""The worker: claims jobs, runs their handlers with bounded concurrency, records outcomes.

It runs as a runtime component - inside the API process in the embedded default, or in
``kervan worker`` processes. On stop (SIGTERM) it stops claiming, lets in-flight jobs finish
within the grace period and gives the remaining ones back without consuming their attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Sequence
from typing import Any

from core.clock import SYSTEM_CLOCK, Clock
from core.errors import KervanError
from core.jobs import (
    AttemptOutcome,
    BackoffPolicy,
    DecisionKind,
    Job,
    PermanentFailure,
    RetryLater,
    decide,
)
from service.backends.health_log import outage_logged
from service.heartbeat import worker_id as new_worker_id
from service.logging import get_logger
from service.periodic import Periodic
from service.queue import metrics as m
from service.queue.base import JobQueue
from service.queue.breakers import BreakerBoard
from service.queue.config import QueueConfig
from service.queue.handlers import HandlerRegistry, Registration
from service.queue.ledger import AttemptLedger, AttemptRecord
from service.queue.pacing import Pacer

log = get_logger("kervan.queue.worker")

#: A pacing wait up to this long is slept in place; a longer one defers the job.
MAX_PACING_SLEEP = 1.0
#: How long a job of a queue without a handler in this process waits before being offered again.
NO_HANDLER_DEFER = 30.0
RELAY_INTERVAL = 0.2
PURGE_INTERVAL = 3600.0
#: Time beyond the shutdown grace to release unfinished jobs and flush the ledger.
STOP_MARGIN = 5.0


def _error_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, KervanError) else f"{type(exc).__name__}: {text}"


def _status_code(exc: BaseException) -> int | None:
    for candidate in (exc, exc.__cause__):
        status = getattr(candidate, "status", None)
        if isinstance(status, int) and status > 0:
            return status
    return None


class Worker:
    def __init__(
        self,
        queue: JobQueue,
        config: QueueConfig,
        clock: Clock = SYSTEM_CLOCK,
        *,
        handlers: HandlerRegistry,
        queues: Sequence[str] | None = None,
        worker_id: str | None = None,
        ledger: AttemptLedger | None = None,
        limiter_source: Callable[[], Any] | None = None,
        breakers: BreakerBoard | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.queue = queue
        self.handlers = handlers
        self.config = config
        self.clock = clock
        self.worker_id = worker_id or new_worker_id()
        self.breakers = breakers or BreakerBoard(config.breaker, clock)
        self._queues = list(queues) if queues else None
        self._ledger = ledger
        self._limiter_source = limiter_source
        self._pacer: Pacer | None = None
        self._rng = rng or random.Random()
        self._inflight: set[asyncio.Task[None]] = set()
        self._slot_free = asyncio.Event()
        self._stopping = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._last_relay = 0.0
        self._last_purge = 0.0
        self._last_stats = 0.0
        self.last_loop_at = 0.0

    @property
    def queues(self) -> list[str]:
        return self._queues if self._queues is not None else self.handlers.queues()

    @property
    def stop_timeout(self) -> float:
        """How long the runtime must let ``stop`` run: the grace period plus releasing the
        unfinished jobs. Cut short, they would stay leased until the visibility timeout."""
        return self.config.shutdown_grace + STOP_MARGIN

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    # --- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        limiter = self._limiter_source() if self._limiter_source else None
        self._pacer = Pacer(limiter, self.handlers.pacing_policies())
        if self._ledger is not None:
            await self._ledger.start()
        self._stopping.clear()
        self._loop_task = asyncio.create_task(self._run(), name="queue-worker")
        log.info("queue worker started", extra={"worker": self.worker_id, "queues": self.queues})

    async def stop(self) -> None:
        self._stopping.set()
        self._slot_free.set()
        self.queue.wake()  # a claim waiting for work returns now (an idle one may sleep long)
        if self._loop_task is not None:
            # asyncio.wait, not a suppressed await: a cancellation of stop() itself must
            # propagate instead of being swallowed as if it were the loop task's.
            await asyncio.wait([self._loop_task])
            if not self._loop_task.cancelled() and self._loop_task.exception() is not None:
                log.error("the claim loop crashed", exc_info=self._loop_task.exception())
            self._loop_task = None
        if self._inflight:
            _, pending = await asyncio.wait(set(self._inflight), timeout=self.config.shutdown_grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
                log.info("released %d unfinished jobs at shutdown", len(pending))
        try:
            await self.queue.retire(self.worker_id, self.queues)
        except KervanError as exc:
            if not outage_logged(exc, "retiring the worker's consumer"):
                log.warning("retiring the worker's consumer failed: %s", exc.message)
        if self._ledger is not None:
            await self._ledger.stop()
        log.info("queue worker stopped", extra={"worker": self.worker_id})

    # --- the claim loop ------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._stopping.is_set():
            self.last_loop_at = self.clock.now()
            await self._housekeeping()
            free = self.config.concurrency - len(self._inflight)
            if free <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            queues = self.queues
            if not queues:
                await self._pause(self.config.poll_interval)
                continue
            try:
                jobs = await self.queue.claim(
                    queues, free, worker_id=self.worker_id, wait=self.config.poll_interval
                )
            except KervanError as exc:
                if not outage_logged(exc, "claiming jobs"):
                    log.warning("claiming jobs failed: %s", exc.message)
                await self._pause(1.0)
                continue
            for job in jobs:
                task = asyncio.create_task(self._process(job), name=f"job:{job.key}")
                self._inflight.add(task)
                task.add_done_callback(self._job_done)
            m.IN_FLIGHT.set(len(self._inflight))

    def _job_done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slot_free.set()
        m.IN_FLIGHT.set(len(self._inflight))
        if not task.cancelled() and task.exception() is not None:
            log.error("job task crashed", exc_info=task.exception())

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _housekeeping(self) -> None:
        mono = self.clock.monotonic()
        relay = getattr(self.queue, "relay", None)
        if relay is not None and mono - self._last_relay >= RELAY_INTERVAL:
            self._last_relay = mono
            try:
                await relay(worker_id=self.worker_id)
            except KervanError as exc:
                if not outage_logged(exc, "outbox relay"):
                    log.warning("outbox relay failed: %s", exc.message)
        if mono - self._last_stats >= self.config.heartbeat_interval:
            self._last_stats = mono
            await self.publish_stats()
        if mono - self._last_purge >= PURGE_INTERVAL:
            self._last_purge = mono
            try:
                purged = await self.queue.purge_finished(self.clock.now() - self.config.retention)
                if purged:
                    log.info("purged %d finished jobs", purged)
            except KervanError as exc:
                if not outage_logged(exc, "purging finished jobs"):
                    log.warning("purging finished jobs failed: %s", exc.message)

    async def publish_stats(self) -> None:
        self.breakers.publish()
        await publish_queue_stats(self.queue, self.queues)

    # --- one job -------------------------------------------------------------------------
    async def _process(self, job: Job) -> None:
        if job.attempt == 1:
            m.START_DELAY.labels(job.queue).observe(max(0.0, self.clock.now() - job.enqueued_at))
        registration = self.handlers.get(job.queue)
        if registration is None:
            await self._settle(
                job,
                None,
                AttemptOutcome.DEFERRED,
                NO_HANDLER_DEFER,
                "no handler for this queue in this worker",
                None,
                0.0,
            )
            return
        if job.over_budget:
            await self._settle(
                job,
                registration,
                AttemptOutcome.EXPIRED,
                0.0,
                "the lease ran out during the final attempt (worker died or job hung)",
                None,
                0.0,
            )
            return
        try:
            wait = await self._pace(job, registration)
        except asyncio.CancelledError:
            await self._settle(
                job, registration, AttemptOutcome.RELEASED, 0.0, "worker shutting down", None, 0.0
            )
            raise
        if wait > 0:
            await self._settle(job, registration, AttemptOutcome.DEFERRED, wait, "paced", None, 0.0)
            return
        breaker = self.breakers.get(registration.provider) if registration.provider else None
        if breaker is not None and not breaker.allow():
            self.breakers.publish()
            await self._settle(
                job,
                registration,
                AttemptOutcome.DEFERRED,
                max(1.0, breaker.retry_after()),
                f"circuit open for {registration.provider}",
                None,
                0.0,
            )
            return
        await self._attempt(job, registration, breaker)

    async def _pace(self, job: Job, registration: Registration) -> float:
        if registration.pacing is None or self._pacer is None or not self._pacer.enabled:
            return 0.0
        checks = registration.pacing(job)
        waited = 0.0
        while True:
            wait = await self._pacer.wait_needed(checks)
            if wait <= 0:
                return 0.0
            if waited + wait > MAX_PACING_SLEEP:
                return wait
            await asyncio.sleep(wait)
            waited += wait

    async def _attempt(self, job: Job, registration: Registration, breaker: Any) -> None:
        # The job's own timeout (given at enqueue), else its queue's, else the default - and
        # never longer than the lease, or a job still running would be handed out again.
        timeout = min(
            job.timeout or registration.timeout or self.config.job_timeout,
            self.config.visibility_timeout * 0.9,
        )
        started = self.clock.monotonic()
        status: int | None = None
        defer = 0.0
        error = ""
        try:
            try:
                async with asyncio.timeout(timeout):
                    result = await registration.handler(job)
                status = result if isinstance(result, int) else None
                outcome = AttemptOutcome.SUCCEEDED
            except RetryLater as signal_:
                outcome, defer, error = AttemptOutcome.DEFERRED, signal_.after_seconds, str(signal_)
                status = _status_code(signal_)
            except PermanentFailure as signal_:
                outcome, error = AttemptOutcome.PERMANENT, signal_.reason
                status = _status_code(signal_)
            except TimeoutError:
                outcome, error = AttemptOutcome.TIMED_OUT, f"timed out after {timeout:g}s"
            except asyncio.CancelledError:
                # Shutdown after the grace period: give the job back, attempt not consumed.
                if breaker is not None:
                    breaker.record_neutral()
                await self._settle(
                    job,
                    registration,
                    AttemptOutcome.RELEASED,
                    0.0,
                    "worker shutting down",
                    None,
                    self.clock.monotonic() - started,
                )
                raise
            except Exception as exc:
                outcome, error, status = AttemptOutcome.FAILED, _error_text(exc), _status_code(exc)
        finally:
            elapsed = self.clock.monotonic() - started
            m.DURATION.labels(job.queue).observe(elapsed)
        if breaker is not None:
            if outcome in (AttemptOutcome.SUCCEEDED, AttemptOutcome.PERMANENT):
                breaker.record_success()
            elif outcome in (AttemptOutcome.FAILED, AttemptOutcome.TIMED_OUT):
                breaker.record_failure()
            else:
                breaker.record_neutral()
        await self._settle(job, registration, outcome, defer, error, status, elapsed)

    async def _settle(
        self,
        job: Job,
        registration: Registration | None,
        outcome: AttemptOutcome,
        defer: float,
        error: str,
        status: int | None,
        elapsed: float,
    ) -> None:
        policy: BackoffPolicy = self.config.backoff
        decision = decide(
            job, outcome, policy=policy, rng=self._rng, defer_seconds=defer, reason=error
        )
        self._record(job, registration, outcome, status, error, elapsed)
        m.OUTCOMES.labels(job.queue, str(outcome)).inc()
        try:
            if decision.kind is DecisionKind.COMPLETE:
                kept = await self.queue.complete(job)
                m.SUCCEEDED.labels(job.queue).inc()
            elif decision.kind is DecisionKind.DEAD:
                # The hook first: if this process dies before the dead letter is recorded, the
                # lease runs out, the job comes back over budget and the hook runs again (hooks
                # enqueue under a key derived from the job's, so a repeat is deduplicated).
                # The other order would lose the alert in that window.
                await self._on_dead(job, registration, error)
                kept = await self.queue.dead_letter(job, error=error, outcome=str(outcome))
                m.FAILED.labels(job.queue).inc()
                if kept:
                    m.DEAD_LETTERED.labels(job.queue).inc()
            else:
                kept = await self.queue.retry(
                    job,
                    delay=decision.delay,
                    consume_attempt=decision.consume_attempt,
                    error=error,
                    outcome=str(outcome),
                )
                if decision.consume_attempt:
                    m.FAILED.labels(job.queue).inc()
                m.RETRIED.labels(job.queue, str(decision.kind)).inc()
        except KervanError as exc:
            # The lease runs out and the job comes back: nothing is lost, at worst repeated.
            log.error(
                "recording the outcome of job %s failed: %s",
                job.key,
                exc.message,
                extra={"job": job.key, "queue": job.queue, "outcome": str(outcome)},
            )
            return
        if not kept:
            m.LEASE_LOST.labels(job.queue).inc()
            log.warning(
                "job %s was taken over by another worker; outcome %s discarded",
                job.key,
                outcome,
                extra={"job": job.key, "queue": job.queue},
            )

    async def _on_dead(self, job: Job, registration: Registration | None, error: str) -> None:
        log.warning(
            "job %s dead-lettered after %d attempts: %s",
            job.key,
            job.attempt,
            error,
            extra={"job": job.key, "queue": job.queue},
        )
        if registration is None or registration.on_dead is None:
            return
        try:
            await registration.on_dead(job, error)
        except Exception:  # a broken hook must not take the worker down
            log.exception("dead-letter hook of queue %s failed for job %s", job.queue, job.key)

    def _record(
        self,
        job: Job,
        registration: Registration | None,
        outcome: AttemptOutcome,
        status: int | None,
        error: str,
        elapsed: float,
    ) -> None:
        if self._ledger is None:
            return
        self._ledger.record(
            AttemptRecord(
                job_key=job.key,
                queue=job.queue,
                provider=registration.provider if registration else None,
                attempt=job.attempt,
                outcome=str(outcome),
                status_code=status,
                error=error or None,
                latency_ms=round(elapsed * 1000, 3),
                worker=self.worker_id,
                at=self.clock.now(),
            )
        )


async def publish_queue_stats(queue: JobQueue, queues: Sequence[str]) -> None:
    """Backlog gauges of ``queues`` (what an autoscaler such as KEDA reads from /metrics)."""
    try:
        stats = await queue.stats(queues)
    except KervanError as exc:
        if not outage_logged(exc, "queue stats"):
            log.warning("queue stats failed: %s", exc.message)
        return
    for s in stats:
        m.BACKLOG.labels(s.queue).set(s.ready)
        m.DELAYED.labels(s.queue).set(s.delayed)
        m.RUNNING.labels(s.queue).set(s.running)
        m.DEAD.labels(s.queue).set(s.dead)
        m.OLDEST_AGE.labels(s.queue).set(s.oldest_ready_age)


class QueueStatsPublisher(Periodic):
    """Keeps the backlog gauges fresh in processes without a worker (scaled-mode API pods),
    so the backlog stays visible while the worker deployment is scaled to zero."""

    name = "queue-stats"

    def __init__(self, queue: JobQueue, handlers: HandlerRegistry, interval: float) -> None:
        super().__init__(interval)
        self.queue = queue
        self.handlers = handlers

    async def step(self) -> None:
        await publish_queue_stats(self.queue, self.handlers.queues())
