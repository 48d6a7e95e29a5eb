"""flows: flow_edges (transition counts and probabilities) and flow_segments (versions)

Revision ID: 0003_flows
Revises: 0001_foundation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.db.types import UTCDateTime

revision = "0003_flows"
down_revision = "0001_foundation"
branch_labels = ("flows",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flow_edges",
        sa.Column("seg", sa.String(8), nullable=False),
        sa.Column("from_path", sa.String(191), nullable=False),
        sa.Column("to_path", sa.String(191), nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("probability", sa.Double, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("seg", "from_path", "to_path", name="pk_flow_edges"),
    )
    op.create_table(
        "flow_segments",
        sa.Column("seg", sa.String(8), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("seg", name="pk_flow_segments"),
    )


def downgrade() -> None:
    op.drop_table("flow_segments")
    op.drop_table("flow_edges")
