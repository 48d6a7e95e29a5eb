"""ads: Google Ads connections per site, upload state per sealed intent, attempts ledger

Revision ID: 0024_ads_conversions
Revises: 0020_tracking
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.db.types import ExactString, UTCDateTime

revision = "0024_ads_conversions"
down_revision = "0020_tracking"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ads_connections",
        sa.Column("site_id", BigId, nullable=False),
        sa.Column("customer_id", sa.String(10), nullable=False),
        sa.Column("conversion_action", sa.String(80), nullable=False),
        sa.Column("login_customer_id", sa.String(10), nullable=True),
        sa.Column("token_ciphertext", ExactString(1024), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("status_reason", sa.String(80), nullable=True),
        sa.Column("status_message", sa.String(255), nullable=True),
        sa.Column("paused_at", UTCDateTime(), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("flush_key", sa.String(64), nullable=True),
        sa.Column("flush_wakes_at", UTCDateTime(), nullable=True),
        sa.Column("connected_by", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", name="pk_ads_connections"),
    )
    op.create_table(
        "ads_uploads",
        sa.Column("site_id", BigId, nullable=False),
        sa.Column("intent_id", BigId, nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("reason", sa.String(80), nullable=True),
        sa.Column("message", sa.String(255), nullable=True),
        sa.Column("order_id", ExactString(64), nullable=False),
        sa.Column("click_kind", sa.String(6), nullable=True),
        sa.Column("click_id", ExactString(255), nullable=True),
        sa.Column("consent_subject", ExactString(64), nullable=True),
        sa.Column("conversion_at", UTCDateTime(), nullable=False),
        sa.Column("value", sa.Numeric(14, 2), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("lease_token", sa.String(32), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("uploaded_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "intent_id", name="pk_ads_uploads"),
    )
    op.create_index("ix_ads_uploads_due", "ads_uploads", ["site_id", "status", "next_attempt_at"])
    op.create_index("ix_ads_uploads_status", "ads_uploads", ["site_id", "status", "intent_id"])
    op.create_index("ix_ads_uploads_lease", "ads_uploads", ["site_id", "lease_token"])
    op.create_table(
        "ads_attempts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("site_id", BigId, nullable=False),
        sa.Column("intent_id", BigId, nullable=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=True),
        sa.Column("customer_id", sa.String(10), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error_code", sa.String(80), nullable=True),
        sa.Column("http_status", sa.SmallInteger(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("batch_size", sa.Integer(), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ads_attempts"),
    )
    op.create_index("ix_ads_attempts_intent", "ads_attempts", ["site_id", "intent_id", "id"])
    op.create_index("ix_ads_attempts_site_at", "ads_attempts", ["site_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_ads_attempts_site_at", table_name="ads_attempts")
    op.drop_index("ix_ads_attempts_intent", table_name="ads_attempts")
    op.drop_table("ads_attempts")
    op.drop_index("ix_ads_uploads_lease", table_name="ads_uploads")
    op.drop_index("ix_ads_uploads_status", table_name="ads_uploads")
    op.drop_index("ix_ads_uploads_due", table_name="ads_uploads")
    op.drop_table("ads_uploads")
    op.drop_table("ads_connections")
