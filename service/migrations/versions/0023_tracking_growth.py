"""tracking: dashboard indexes, and track_events partitioned by month on MariaDB

Revision ID: 0023_tracking_growth
Revises: 0020_tracking

On MariaDB ``track_events`` becomes ``PARTITION BY RANGE COLUMNS(received_at)``: one partition
per month (``pYYYYMM``: rows received before the first day of the next month) from the month of
the oldest row (or the current month) to three months ahead, and ``pmax`` for anything later.
The tracking maintenance job keeps months ahead from then on and drops expired ones.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import op

revision = "0023_tracking_growth"
down_revision = "0020_tracking"
branch_labels = None
depends_on = None

AHEAD_MONTHS = 3
#: Indexes the dashboard's queries need beyond those of 0020 (table, name, columns).
INDEXES = (
    ("track_daily", "ix_track_daily_site_dimension", ["site_id", "dimension", "day"]),
)


def _next(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _partitions(first: date, last: date) -> str:
    parts = []
    month = first
    while month <= last:
        bound = _next(month)
        parts.append(
            f"PARTITION p{month.year:04d}{month.month:02d} "
            f"VALUES LESS THAN ('{bound.isoformat()} 00:00:00')"
        )
        month = bound
    parts.append("PARTITION pmax VALUES LESS THAN (MAXVALUE)")
    return ", ".join(parts)


def upgrade() -> None:
    for table, name, columns in INDEXES:
        op.create_index(name, table, columns)
    bind = op.get_bind()
    if bind.dialect.name not in ("mysql", "mariadb"):
        return
    # A statement across sites on purpose (the tests' scope guard is told so).
    oldest = bind.execute(
        sa.text("SELECT MIN(received_at) FROM track_events").execution_options(
            kervan_all_sites=True
        )
    ).scalar()
    now = datetime.now(UTC)
    last = first = date(now.year, now.month, 1)
    if oldest is not None:
        first = min(first, date(oldest.year, oldest.month, 1))
    for _ in range(AHEAD_MONTHS):
        last = _next(last)
    op.execute(
        "ALTER TABLE track_events PARTITION BY RANGE COLUMNS(received_at) "
        f"({_partitions(first, last)})"
    )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name in ("mysql", "mariadb"):
        op.execute("ALTER TABLE track_events REMOVE PARTITIONING")
    for table, name, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
