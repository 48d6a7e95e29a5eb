"""tracking: calls reported by sites' phone systems (POST /t/calls), matched or not

Revision ID: 0022_tracking_calls
Revises: 0020_tracking
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.db.types import UTCDateTime

revision = "0022_tracking_calls"
down_revision = "0020_tracking"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "track_calls",
        sa.Column("id", BigId, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("site_id", BigId, nullable=False),
        sa.Column("caller", sa.String(16), nullable=False),
        sa.Column("callee", sa.String(16), nullable=True),
        sa.Column("called_at", UTCDateTime(), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("intent_id", BigId, nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_track_calls"),
        sa.UniqueConstraint("site_id", "caller", "called_at", name="uq_track_calls_call"),
    )
    op.create_index("ix_track_calls_site", "track_calls", ["site_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_track_calls_site", table_name="track_calls")
    op.drop_table("track_calls")
