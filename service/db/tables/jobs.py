"""The SQL outbox of the durable job queue and the attempts ledger.

Times in ``queue_jobs`` are Unix seconds (DOUBLE) because the claim query compares them with
"now" from the injected clock on every poll. A finished job keeps its row (so its key still
deduplicates) with ``available_at`` pushed to ``NEVER``: the claim query then walks the
``(queue, available_at)`` index in order and never meets finished rows.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Double, Index, Integer, String, Table, Text

from service.db.metadata import metadata
from service.db.types import JSONType, UTCDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")

#: ``available_at`` of finished (done or dead) jobs: far beyond any real time.
NEVER = 9.0e15

queue_jobs = Table(
    "queue_jobs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("job_key", String(191), nullable=False, unique=True),
    Column("queue", String(64), nullable=False),
    Column("payload", JSONType, nullable=False),
    # queued | running | done | dead
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False),
    # Fencing token: grows with every claim; outcomes reported under an older lease are ignored.
    Column("lease", Integer, nullable=False, default=0),
    Column("available_at", Double, nullable=False),
    Column("enqueued_at", Double, nullable=False),
    Column("locked_by", String(64), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("history", JSONType, nullable=True),
    Column("finished_at", Double, nullable=True),
    # Per-job attempt timeout given at enqueue; NULL: the queue's default.
    Column("timeout_seconds", Double, nullable=True),
    Index("ix_queue_jobs_queue_available_at", "queue", "available_at"),
    Index("ix_queue_jobs_status_finished_at", "status", "finished_at"),
)

#: One row per attempt of any job, whichever backend ran it: what was sent where, and how it went.
queue_attempts = Table(
    "queue_attempts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("job_key", String(191), nullable=False),
    Column("queue", String(64), nullable=False),
    Column("provider", String(32), nullable=True),
    Column("attempt", Integer, nullable=False),
    # succeeded | failed | timed_out | deferred | permanent | released | expired
    Column("outcome", String(16), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("latency_ms", Double, nullable=False),
    Column("worker", String(64), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Index("ix_queue_attempts_job_key_id", "job_key", "id"),
    Index("ix_queue_attempts_at", "at"),
)
