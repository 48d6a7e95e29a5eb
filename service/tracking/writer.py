"""The batch writer: batches that arrive while a transaction is being written wait and go
together in the next one (group commit).

A batch that finds the writer idle goes at once, alone: a lone batch is never delayed. Under
load the statements and the commit of one transaction serve every batch that queued behind
the previous one (``service.tracking.batch.write_group``), which is what lets one process
ingest thousands of events per second: per batch, the fixed costs of a transaction (pool
checkout, statements, commit, fsync) are the group's divided by its size.

A group that cannot be written as one (a site's quota needs its exact path, or a statement
failed for a reason other than a lock conflict) is written again batch by batch, each on its
own paths (``write_events`` / ``write_exact`` / ``write_one_by_one``), so that no batch pays
for another's trouble. Lock conflicts (MariaDB deadlocks) are retried as they were.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.errors import BackendUnavailable, Conflict, StorageError
from core.tracking.events import Checked, Event
from service.db import Database
from service.db.conflicts import is_lock_conflict
from service.logging import get_logger
from service.tracking import idempotency
from service.tracking.batch import (
    BatchContext,
    NeedsExactQuota,
    Written,
    write_events,
    write_exact,
    write_group,
    write_one_by_one,
)
from service.tracking.ingest_metrics import GROUP_SIZE, WRITE_PATHS

log = get_logger("kervan.tracking.writer")

#: Lock conflicts (MariaDB deadlocks) are tried this many times in all. InnoDB picks a victim
#: at once, so a retry is cheap; batches that share event ids (a script's resends racing each
#: other) can collide on the dedup rows' duplicate-key locks several times in a row.
WRITE_ATTEMPTS = 8
#: Most batches and events in one transaction.
MAX_GROUP_BATCHES = 64
MAX_GROUP_EVENTS = 4000
#: Batches waiting beyond this are refused (503): the database does not keep up.
MAX_PENDING = 5000
#: At shutdown, queued batches get this long to be written (the runtime allows a component
#: ten seconds to stop); what is left is answered 503 and sent again by the script.
STOP_WAIT_SECONDS = 8.0


Answer = Callable[[Sequence[Checked], Written], dict[str, Any]]


@dataclass(slots=True)
class Job:
    ctx: BatchContext
    checked: Sequence[Checked]
    candidates: Sequence[Event]
    #: Builds the answer's body (inside the transaction: the Idempotency-Key record holds it).
    answer: Answer
    key: str | None = None
    digest: str | None = None
    replace_before: datetime | None = None
    future: asyncio.Future[tuple[Written, dict[str, Any]]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def _resolve(job: Job, result: tuple[Written, dict[str, Any]] | BaseException) -> None:
    if job.future.done():
        return
    if isinstance(result, BaseException):
        job.future.set_exception(result)
    else:
        job.future.set_result(result)


class BatchWriter:
    def __init__(self, db: Database, *, concurrency: int | None = None) -> None:
        self.db = db
        # SQLite has one writer: one transaction at a time (ours never collide in its busy
        # handler). MariaDB overlaps a group's commit with the next group's work.
        self.concurrency = concurrency or (1 if db.dialect == "sqlite" else 2)
        self._queue: deque[Job] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    async def write(self, job: Job) -> tuple[Written, dict[str, Any]]:
        """Store ``job``: what it stored and its answer's body."""
        if len(self._queue) >= MAX_PENDING:
            raise BackendUnavailable("database", "too many batches waiting; retry later")
        self._queue.append(job)
        if len(self._tasks) < self.concurrency:
            task = asyncio.get_running_loop().create_task(self._drain(), name="tracking-writer")
            self._tasks.add(task)
            self._idle.clear()
            task.add_done_callback(self._done)
        return await job.future

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self._idle.set()

    def _take(self) -> list[Job]:
        group = [self._queue.popleft()]
        events = len(group[0].candidates)
        while self._queue and len(group) < MAX_GROUP_BATCHES:
            size = len(self._queue[0].candidates)
            if events + size > MAX_GROUP_EVENTS:
                break
            events += size
            group.append(self._queue.popleft())
        return group

    async def _drain(self) -> None:
        group: list[Job] = []
        try:
            while self._queue:
                group = self._take()
                GROUP_SIZE.observe(len(group))
                try:
                    if len(group) == 1:
                        _resolve(group[0], await self._single(group[0]))
                    else:
                        await self._group(group)
                except Exception as error:
                    for job in group:
                        _resolve(job, error)
                group = []
        except asyncio.CancelledError:
            stopping = BackendUnavailable("database", "the server is stopping; send again")
            for job in [*group, *self._queue]:
                _resolve(job, stopping)
            self._queue.clear()
            raise

    async def _group(self, group: list[Job]) -> None:
        dialect = self.db.dialect
        attempt = 0
        while True:
            try:
                async with self.db.begin() as conn:
                    written = await write_group(
                        conn, dialect, [(job.ctx, job.candidates) for job in group]
                    )
                    answers = [
                        (w, job.answer(job.checked, w))
                        for job, w in zip(group, written, strict=True)
                    ]
                    for job, (_, body) in zip(group, answers, strict=True):
                        await _remember(conn, dialect, job, body)
                WRITE_PATHS.labels("group").inc()
                for job, answer in zip(group, answers, strict=True):
                    _resolve(job, answer)
                return
            except (StorageError, Conflict) as error:
                attempt += 1
                if is_lock_conflict(error) and attempt < WRITE_ATTEMPTS:
                    WRITE_PATHS.labels("retry").inc()
                    await _backoff(attempt)
                    continue
                log.warning(
                    "a group of batches failed as a whole; writing them one by one",
                    extra={"batches": len(group), "error": error.message[:300]},
                )
                break
            except NeedsExactQuota:
                break
        for job in group:
            try:
                _resolve(job, await self._single(job))
            except Exception as error:
                _resolve(job, error)

    async def _single(self, job: Job) -> tuple[Written, dict[str, Any]]:
        dialect = self.db.dialect
        ctx = job.ctx
        path = "fast"
        attempt = 0
        while True:
            try:
                async with self.db.begin() as conn:
                    if not job.candidates:
                        written = Written()
                    elif path == "fast":
                        written = await write_events(conn, dialect, ctx, job.candidates, room=None)
                    elif path == "exact":
                        written = await write_exact(conn, dialect, ctx, job.candidates)
                    else:
                        written = await write_one_by_one(conn, dialect, ctx, job.candidates)
                    body = job.answer(job.checked, written)
                    await _remember(conn, dialect, job, body)
                WRITE_PATHS.labels(path).inc()
                return written, body
            except NeedsExactQuota:
                path = "exact"
            except (StorageError, Conflict) as error:
                attempt += 1
                if is_lock_conflict(error) and attempt < WRITE_ATTEMPTS:
                    WRITE_PATHS.labels("retry").inc()
                    await _backoff(attempt)
                    continue
                if path == "one_by_one" or is_lock_conflict(error):
                    raise
                log.warning(
                    "a batch failed as a whole; storing its events one by one",
                    extra={"site": ctx.scope.site_id, "error": error.message[:300]},
                )
                path = "one_by_one"

    # --- component ------------------------------------------------------------------------

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        """Let what is queued be written (within the runtime's stop timeout), then stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), STOP_WAIT_SECONDS)
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _backoff(attempt: int) -> None:
    """Full jitter, so that the transactions that collided do not collide again in step."""
    await asyncio.sleep(random.uniform(0.0, min(0.2, 0.004 * 2**attempt)))


async def _remember(conn: Any, dialect: str, job: Job, body: dict[str, Any]) -> None:
    if job.key is None or job.digest is None:
        return
    await idempotency.remember(
        conn,
        dialect,
        job.ctx.scope,
        job.key,
        job.digest,
        body,
        job.ctx.now,
        replace_before=job.replace_before,
    )
