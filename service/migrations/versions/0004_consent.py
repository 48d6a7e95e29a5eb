"""consent: consent_state and the append-only consent_events log

Revision ID: 0004_consent
Revises: 0001_foundation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.db.types import JSONType, UTCDateTime

revision = "0004_consent"
down_revision = "0001_foundation"
branch_labels = ("consent",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_state",
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("region", sa.String(8), nullable=True),
        sa.Column("purposes", JSONType, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("subject", name="pk_consent_state"),
    )
    op.create_table(
        "consent_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("ts_ms", sa.BigInteger, nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("value", sa.String(8), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("prior_status", sa.String(8), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("banner_version", sa.String(64), nullable=True),
        sa.Column("region", sa.String(8), nullable=True),
        sa.Column("expires_at_ms", sa.BigInteger, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_consent_events"),
        sa.UniqueConstraint("subject", "seq", name="uq_consent_events_subject_seq"),
    )
    op.create_index("ix_consent_events_ts_ms", "consent_events", ["ts_ms"])


def downgrade() -> None:
    op.drop_table("consent_events")
    op.drop_table("consent_state")
