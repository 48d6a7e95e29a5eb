"""tracking: quota warnings sent per site, month and kind (events, intents)

Revision ID: 0027_quota_warnings
Revises: 0024_ads_conversions

``track_usage.warned`` (one boolean) cannot tell two kinds and two levels apart; each kind gets
the highest level warned this month (0, the early warning's percent, 100), raised by a
conditional update so that exactly one batch sends each warning. ``warned`` stays for now:
processes of the previous release still write it during a rolling update.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027_quota_warnings"
down_revision = "0024_ads_conversions"
branch_labels = None
depends_on = None

COLUMNS = ("warned_events", "warned_intents")


def upgrade() -> None:
    for name in COLUMNS:
        op.add_column(
            "track_usage", sa.Column(name, sa.SmallInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("track_usage") as batch:  # SQLite rebuilds the table
        for name in COLUMNS:
            batch.drop_column(name)
