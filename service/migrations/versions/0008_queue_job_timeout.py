"""queue: per-job attempt timeout carried with the job

Revision ID: 0008_queue_job_timeout
Revises: 0005_queue
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_queue_job_timeout"
down_revision = "0005_queue"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("queue_jobs", sa.Column("timeout_seconds", sa.Double, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("queue_jobs") as batch:  # SQLite rebuilds the table
        batch.drop_column("timeout_seconds")
