"""consent: subjects compared byte for byte on MariaDB (its default collations ignore case)

Revision ID: 0009_consent_exact_subject
Revises: 0004_consent
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0009_consent_exact_subject"
down_revision = "0004_consent"
branch_labels = None
depends_on = None

_TABLES = ("consent_state", "consent_events")


def upgrade() -> None:
    if op.get_bind().dialect.name not in ("mysql", "mariadb"):
        return  # SQLite already compares text byte for byte
    for table in _TABLES:
        op.alter_column(
            table,
            "subject",
            existing_type=sa.String(64),
            type_=mysql.VARCHAR(64, charset="utf8mb4", collation="utf8mb4_bin"),
            existing_nullable=False,
        )


def downgrade() -> None:
    if op.get_bind().dialect.name not in ("mysql", "mariadb"):
        return
    for table in _TABLES:
        op.alter_column(
            table,
            "subject",
            existing_type=mysql.VARCHAR(64, charset="utf8mb4", collation="utf8mb4_bin"),
            type_=sa.String(64),
            existing_nullable=False,
        )
