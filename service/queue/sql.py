"""The SQL outbox: the job queue as a table, on SQLite (embedded) or MariaDB.

Claiming differs by dialect: SQLite has a single writer, so one ``UPDATE ... RETURNING`` over
the oldest ready rows is atomic; MariaDB has no ``UPDATE ... RETURNING``, so a transaction
selects the rows ``FOR UPDATE SKIP LOCKED`` (concurrent workers skip each other's rows instead
of waiting) and then marks them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, and_, delete, event, func, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from core.clock import Clock
from core.errors import StorageError
from core.jobs import Job, JobStatus
from service.db import Database
from service.db.tables.jobs import NEVER, queue_jobs
from service.queue.base import (
    DeadLetter,
    JobQueue,
    QueueStats,
    check_enqueue,
    history_entry,
)
from service.queue.batching import TurnBatcher
from service.queue.config import QueueConfig
from service.queue.metrics import ENQUEUED

T = queue_jobs
#: The longest an idle embedded worker sleeps without a wake-up (see ``claim``).
IDLE_WAIT_SECONDS = 2.0
_CLAIM_COLUMNS = (
    T.c.id,
    T.c.job_key,
    T.c.queue,
    T.c.payload,
    T.c.attempts,
    T.c.max_attempts,
    T.c.lease,
    T.c.enqueued_at,
    T.c.history,
    T.c.timeout_seconds,
)


class SqlOutbox(JobQueue):
    kind = "sql"

    def __init__(self, db: Database, clock: Clock, config: QueueConfig) -> None:
        self._db = db
        self._clock = clock
        self._config = config
        self._wakeup = asyncio.Event()
        self._rotation = 0
        #: When the earliest job of the last queues looked at falls due (embedded only).
        self._next_due: float | None = None
        # Outcomes reported in the same event-loop turn share one transaction (one commit).
        self._finishes: TurnBatcher[tuple[Job, dict[str, Any]], bool] = TurnBatcher(
            self._finish_many
        )

    def wake(self) -> None:
        self._wakeup.set()

    # --- producing -----------------------------------------------------------------------
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
        attempts = check_enqueue(queue, payload, key, max_attempts, self._config, timeout)
        now = self._clock.now()
        row = {
            "job_key": key,
            "queue": queue,
            "payload": payload,
            "status": str(JobStatus.QUEUED),
            "attempts": 0,
            "max_attempts": attempts,
            "lease": 0,
            "available_at": now + max(0.0, delay),
            "enqueued_at": now,
            "history": [],
            "timeout_seconds": timeout,
        }
        if conn is not None:
            try:
                inserted = await self._insert(conn, row)
            except SQLAlchemyError as exc:
                raise StorageError(f"enqueue failed: {type(exc).__name__}") from exc
            if inserted:
                self._on_commit(conn, queue, delay)
            return inserted
        async with self._db.begin() as own:
            inserted = await self._insert(own, row)
        if inserted:
            ENQUEUED.labels(queue).inc()
            if delay <= 0:
                self.wake()
        return inserted

    def _on_commit(self, conn: AsyncConnection, queue: str, delay: float) -> None:
        """Count the job and wake the workers once the caller's transaction commits (a rolled
        back business row produced no job, so nothing is counted)."""

        settled = False

        def committed(_: Any) -> None:
            nonlocal settled
            if not settled:
                settled = True
                ENQUEUED.labels(queue).inc()
                if delay <= 0:
                    self.wake()

        def rolled_back(_: Any) -> None:
            nonlocal settled
            settled = True  # a later transaction on the same connection is not this job's

        sync_conn = conn.sync_connection
        if sync_conn is not None:
            event.listen(sync_conn, "commit", committed)
            event.listen(sync_conn, "rollback", rolled_back)

    async def _insert(self, conn: AsyncConnection, row: dict[str, Any]) -> bool:
        if conn.dialect.name == "sqlite":
            stmt: Any = sqlite_insert(T).values(row).on_conflict_do_nothing()
        else:
            # Only the unique job key can collide: every other column is validated above.
            stmt = mysql_insert(T).values(row).prefix_with("IGNORE")
        result = await conn.execute(stmt)
        return bool(result.rowcount == 1)

    # --- consuming -----------------------------------------------------------------------
    async def claim(
        self, queues: Sequence[str], limit: int, *, worker_id: str, wait: float = 0.0
    ) -> list[Job]:
        # Cleared before looking, so an enqueue committed meanwhile still wakes the wait below.
        self._wakeup.clear()
        jobs = await self._claim_once(queues, limit, worker_id)
        if jobs or wait <= 0:
            return jobs
        if self._db.dialect == "sqlite":
            # An embedded database belongs to one process, whose own enqueues wake this
            # worker: an idle worker sleeps until its next job falls due (a retry's backoff),
            # at most IDLE_WAIT_SECONDS (for a row another process, the CLI, wrote), instead
            # of polling the database several times a second beside the API it shares a
            # thread with.
            due = self._next_due
            until_due = IDLE_WAIT_SECONDS if due is None else due - self._clock.now()
            wait = max(wait, min(until_due, IDLE_WAIT_SECONDS))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), wait)
        return await self._claim_once(queues, limit, worker_id)

    async def _claim_once(self, queues: Sequence[str], limit: int, worker_id: str) -> list[Job]:
        if limit <= 0 or not queues:
            return []
        if self._db.dialect == "sqlite":
            self._next_due = await self._earliest(queues)
            if self._next_due is None or self._next_due > self._clock.now():
                return []
        # Start with a different queue each time so one busy queue cannot starve the others.
        self._rotation = (self._rotation + 1) % len(queues)
        ordered = [*queues[self._rotation :], *queues[: self._rotation]]
        jobs: list[Job] = []
        for queue in ordered:
            remaining = limit - len(jobs)
            if remaining <= 0:
                break
            jobs.extend(await self._claim_queue(queue, remaining, worker_id))
        return jobs

    async def _earliest(self, queues: Sequence[str]) -> float | None:
        """When the earliest job of ``queues`` is (or was) due, or ``None`` without jobs: one
        indexed read for an idle worker's poll instead of one per queue (each read costs the
        embedded API process's one thread SQLAlchemy and aiosqlite work)."""
        async with self._db.connect() as conn:
            found = await conn.execute(
                select(func.min(T.c.available_at)).where(T.c.queue.in_(queues))
            )
            earliest = found.scalar()
            return None if earliest is None else float(earliest)

    async def _claim_queue(self, queue: str, limit: int, worker_id: str) -> list[Job]:
        now = self._clock.now()
        leased = {
            "status": str(JobStatus.RUNNING),
            "attempts": T.c.attempts + 1,
            "lease": T.c.lease + 1,
            "available_at": now + self._config.visibility_timeout,
            "locked_by": worker_id,
        }
        ready = and_(T.c.queue == queue, T.c.available_at <= now)
        if self._db.dialect == "sqlite":
            # SQLite has one writer: look before taking the write lock, so an idle worker's
            # polling never makes the API's writes wait.
            async with self._db.connect() as conn:
                if (await conn.execute(select(T.c.id).where(ready).limit(1))).first() is None:
                    return []
        async with self._db.begin() as conn:
            if self._db.dialect == "sqlite":
                oldest = (
                    select(T.c.id).where(ready).order_by(T.c.available_at).limit(limit)
                ).scalar_subquery()
                stmt = update(T).where(T.c.id.in_(oldest)).values(leased).returning(*_CLAIM_COLUMNS)
                return [_job(row, claimed=False) for row in (await conn.execute(stmt)).all()]
            rows = (
                await conn.execute(
                    select(*_CLAIM_COLUMNS)
                    .where(ready)
                    .order_by(T.c.available_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if rows:
                await conn.execute(update(T).where(T.c.id.in_([r.id for r in rows])).values(leased))
            return [_job(row, claimed=True) for row in rows]

    async def _finish(self, job: Job, values: dict[str, Any]) -> bool:
        return await self._finishes.submit((job, values))

    async def _finish_many(self, batch: list[tuple[Job, dict[str, Any]]]) -> list[bool]:
        async with self._db.begin() as conn:
            return [
                (
                    await conn.execute(
                        update(T)
                        .where(T.c.id == int(job.receipt), T.c.lease == job.lease)
                        .values(values)
                    )
                ).rowcount
                == 1
                for job, values in batch
            ]

    async def complete(self, job: Job) -> bool:
        return await self._finish(
            job,
            {
                "status": str(JobStatus.DONE),
                "available_at": NEVER,
                "finished_at": self._clock.now(),
                "locked_by": None,
            },
        )

    async def retry(
        self, job: Job, *, delay: float, consume_attempt: bool, error: str, outcome: str
    ) -> bool:
        now = self._clock.now()
        values: dict[str, Any] = {
            "status": str(JobStatus.QUEUED),
            "available_at": now + max(0.0, delay),
            "locked_by": None,
            "last_error": error[:2000],
        }
        if consume_attempt:
            values["history"] = [
                *job.history,
                history_entry(job, at=now, error=error, outcome=outcome),
            ]
        else:
            values["attempts"] = T.c.attempts - 1
        return await self._finish(job, values)

    async def dead_letter(self, job: Job, *, error: str, outcome: str) -> bool:
        now = self._clock.now()
        return await self._finish(
            job,
            {
                "status": str(JobStatus.DEAD),
                "available_at": NEVER,
                "finished_at": now,
                "locked_by": None,
                "last_error": error[:2000],
                "history": [*job.history, history_entry(job, at=now, error=error, outcome=outcome)],
            },
        )

    # --- observing and administering ------------------------------------------------------
    async def stats(self, queues: Sequence[str]) -> list[QueueStats]:
        """Three grouped reads for all ``queues`` (the stats are read every few seconds, in
        the API process when embedded)."""
        now = self._clock.now()
        mine = T.c.queue.in_(queues)
        async with self._db.connect() as conn:
            ready_rows = await conn.execute(
                select(T.c.queue, func.count(), func.min(T.c.available_at))
                .where(mine, T.c.available_at <= now)
                .group_by(T.c.queue)
            )
            ready = {str(q): (int(n), oldest) for q, n, oldest in ready_rows.all()}
            later_rows = await conn.execute(
                select(T.c.queue, T.c.status, func.count())
                .where(mine, T.c.available_at > now, T.c.available_at < NEVER)
                .group_by(T.c.queue, T.c.status)
            )
            later = {(str(q), str(status)): int(n) for q, status, n in later_rows.all()}
            dead_rows = await conn.execute(
                select(T.c.queue, func.count())
                .where(mine, T.c.status == str(JobStatus.DEAD))
                .group_by(T.c.queue)
            )
            dead = {str(q): int(n) for q, n in dead_rows.all()}
        out: list[QueueStats] = []
        for queue in queues:
            count, oldest = ready.get(queue, (0, None))
            out.append(
                QueueStats(
                    queue=queue,
                    ready=count,
                    delayed=later.get((queue, str(JobStatus.QUEUED)), 0),
                    running=later.get((queue, str(JobStatus.RUNNING)), 0),
                    dead=dead.get(queue, 0),
                    oldest_ready_age=max(0.0, now - oldest) if oldest is not None else 0.0,
                )
            )
        return out

    async def dead_letters(
        self, *, queue: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[DeadLetter]:
        stmt = select(T).where(T.c.status == str(JobStatus.DEAD))
        if queue is not None:
            stmt = stmt.where(T.c.queue == queue)
        stmt = stmt.order_by(T.c.finished_at.desc(), T.c.id.desc()).limit(limit).offset(offset)
        async with self._db.connect() as conn:
            return [_dead(row) for row in (await conn.execute(stmt)).all()]

    async def get_dead_letter(self, key: str) -> DeadLetter | None:
        stmt = select(T).where(T.c.job_key == key, T.c.status == str(JobStatus.DEAD))
        async with self._db.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return _dead(row) if row is not None else None

    async def replay(self, key: str) -> bool:
        async with self._db.begin() as conn:
            result = await conn.execute(
                update(T)
                .where(T.c.job_key == key, T.c.status == str(JobStatus.DEAD))
                .values(
                    status=str(JobStatus.QUEUED),
                    attempts=0,
                    available_at=self._clock.now(),
                    finished_at=None,
                )
            )
        replayed = bool(result.rowcount == 1)
        if replayed:
            self.wake()
        return replayed

    async def discard(self, key: str) -> bool:
        async with self._db.begin() as conn:
            result = await conn.execute(
                delete(T).where(T.c.job_key == key, T.c.status == str(JobStatus.DEAD))
            )
        return bool(result.rowcount == 1)

    async def purge_finished(self, older_than: float) -> int:
        async with self._db.begin() as conn:
            result = await conn.execute(
                delete(T).where(T.c.status == str(JobStatus.DONE), T.c.finished_at < older_than)
            )
        return int(result.rowcount)


def _job(row: Any, *, claimed: bool) -> Job:
    # RETURNING reports the updated values; a MariaDB SELECT saw the row before the update.
    bump = 1 if claimed else 0
    return Job(
        key=row.job_key,
        queue=row.queue,
        payload=row.payload,
        attempt=int(row.attempts) + bump,
        max_attempts=int(row.max_attempts),
        enqueued_at=float(row.enqueued_at),
        lease=int(row.lease) + bump,
        history=list(row.history or []),
        receipt=str(row.id),
        timeout=None if row.timeout_seconds is None else float(row.timeout_seconds),
    )


def _dead(row: Row[Any]) -> DeadLetter:
    return DeadLetter(
        key=row.job_key,
        queue=row.queue,
        payload=row.payload,
        attempts=int(row.attempts),
        max_attempts=int(row.max_attempts),
        last_error=row.last_error or "",
        enqueued_at=float(row.enqueued_at),
        died_at=float(row.finished_at or 0.0),
        history=list(row.history or []),
    )
