"""The attempts ledger: one row per attempt, whichever backend ran it.

Rows are buffered and written in batches by a background task so that the audit does not add
a database round trip to every job; the buffer is flushed when the worker stops.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select

from core.clock import Clock
from core.errors import KervanError
from service.db import Database
from service.db.tables.jobs import queue_attempts
from service.db.types import from_timestamp
from service.logging import get_logger

log = get_logger("kervan.queue.ledger")
MAX_BUFFER = 10_000  # beyond this, rows are dropped (and logged) rather than exhausting memory


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    job_key: str
    queue: str
    provider: str | None
    attempt: int
    outcome: str
    status_code: int | None
    error: str | None
    latency_ms: float
    worker: str
    at: float


class AttemptLedger:
    def __init__(
        self, db: Database, clock: Clock, *, flush_interval: float = 0.25, batch: int = 500
    ) -> None:
        self._db = db
        self._clock = clock
        self._flush_interval = flush_interval
        self._batch = batch
        self._buffer: list[AttemptRecord] = []
        self._task: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._stopping = asyncio.Event()
        self.dropped = 0

    def record(self, record: AttemptRecord) -> None:
        if len(self._buffer) >= MAX_BUFFER:
            self.dropped += 1
            return
        self._buffer.append(record)
        if len(self._buffer) >= self._batch:
            self._kick.set()

    async def flush(self) -> int:
        """Write every buffered row; returns once rows recorded before the call are stored."""
        async with self._flushing:
            return await self._flush_locked()

    async def _flush_locked(self) -> int:
        written = 0
        while self._buffer:
            rows, self._buffer = self._buffer[: self._batch], self._buffer[self._batch :]
            try:
                async with self._db.begin() as conn:
                    await conn.execute(insert(queue_attempts), [_row(r) for r in rows])
            except KervanError as exc:
                # Put them back; the next flush tries again.
                self._buffer = rows + self._buffer
                log.warning("attempts ledger write failed: %s", exc.message)
                break
            except BaseException:
                self._buffer = rows + self._buffer
                raise
            written += len(rows)
        return written

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self._flush_interval)
            self._kick.clear()
            try:
                await self.flush()
            except Exception:  # the rows stay buffered; the writer must keep running
                log.exception("attempts ledger flush failed")

    async def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name="queue-ledger")

    async def stop(self) -> None:
        if self._task is not None:
            # Let a write in progress finish rather than cancelling it halfway.
            self._stopping.set()
            self._kick.set()
            await self._task
            self._task = None
        await self.flush()
        if self.dropped:
            log.error("attempts ledger dropped %d rows (buffer full)", self.dropped)


def _row(r: AttemptRecord) -> dict[str, Any]:
    return {
        "job_key": r.job_key,
        "queue": r.queue,
        "provider": r.provider,
        "attempt": r.attempt,
        "outcome": r.outcome,
        "status_code": r.status_code,
        "error": (r.error or None) and r.error[:2000],
        "latency_ms": r.latency_ms,
        "worker": r.worker[:64],
        "at": from_timestamp(r.at),
    }


async def attempts_of(db: Database, job_key: str, limit: int = 100) -> list[dict[str, Any]]:
    """The ledger rows of one job, oldest first."""
    stmt = (
        select(queue_attempts)
        .where(queue_attempts.c.job_key == job_key)
        .order_by(queue_attempts.c.id)
        .limit(limit)
    )
    async with db.connect() as conn:
        rows = (await conn.execute(stmt)).mappings().all()
    return [
        {
            "attempt": row["attempt"],
            "outcome": row["outcome"],
            "provider": row["provider"],
            "status_code": row["status_code"],
            "error": row["error"],
            "latency_ms": row["latency_ms"],
            "worker": row["worker"],
            "at": row["at"].isoformat(),
        }
        for row in rows
    ]
