"""queue: SQL outbox of the durable job queue and the attempts ledger

Revision ID: 0005_queue
Revises: 0001_foundation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.db.types import JSONType, UTCDateTime

revision = "0005_queue"
down_revision = "0001_foundation"
branch_labels = ("queue",)
depends_on = None


def _id() -> sa.Column:
    return sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
        autoincrement=True,
    )


def upgrade() -> None:
    op.create_table(
        "queue_jobs",
        _id(),
        sa.Column("job_key", sa.String(191), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("payload", JSONType, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("lease", sa.Integer, nullable=False),
        sa.Column("available_at", sa.Double, nullable=False),
        sa.Column("enqueued_at", sa.Double, nullable=False),
        sa.Column("locked_by", sa.String(64), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("history", JSONType, nullable=True),
        sa.Column("finished_at", sa.Double, nullable=True),
        sa.UniqueConstraint("job_key", name="uq_queue_jobs_job_key"),
    )
    op.create_index("ix_queue_jobs_queue_available_at", "queue_jobs", ["queue", "available_at"])
    op.create_index("ix_queue_jobs_status_finished_at", "queue_jobs", ["status", "finished_at"])

    op.create_table(
        "queue_attempts",
        _id(),
        sa.Column("job_key", sa.String(191), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(32), nullable=True),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("latency_ms", sa.Double, nullable=False),
        sa.Column("worker", sa.String(64), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_queue_attempts_job_key_id", "queue_attempts", ["job_key", "id"])
    op.create_index("ix_queue_attempts_at", "queue_attempts", ["at"])


def downgrade() -> None:
    op.drop_table("queue_attempts")
    op.drop_table("queue_jobs")
