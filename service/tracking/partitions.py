"""Monthly partitions of ``track_events`` on MariaDB.

The table is partitioned ``RANGE COLUMNS(received_at)`` (migration ``0023``): one partition per
month, named ``pYYYYMM`` and holding the rows received before the first day of the next month
(the oldest one also everything earlier), and ``pmax`` catching whatever is later. The
maintenance job keeps months ahead of the clock (split off ``pmax`` with ``REORGANIZE
PARTITION``, instant while ``pmax`` is empty) and drops months wholly past retention (``DROP
PARTITION``: the rows go without a delete or a long lock). SQLite has no partitions: nothing
here applies to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from service.tracking.scope import ALL_SITES

TABLE = "track_events"
CATCH_ALL = "pmax"
CATCH_ALL_SQL = f"PARTITION {CATCH_ALL} VALUES LESS THAN (MAXVALUE)"
_NAME = re.compile(r"^p([0-9]{4})([0-9]{2})$")


@dataclass(frozen=True, slots=True, order=True)
class MonthPartition:
    month: date  # the first day of the month the partition is named after
    name: str

    @property
    def bound(self) -> datetime:
        """The first instant the partition does not hold (UTC)."""
        return datetime.combine(next_month(self.month), datetime.min.time(), tzinfo=UTC)


def month_of(instant: datetime) -> date:
    return date(instant.year, instant.month, 1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"p{month.year:04d}{month.month:02d}"


def partition_sql(month: date) -> str:
    bound = next_month(month)
    return f"PARTITION {partition_name(month)} VALUES LESS THAN ('{bound.isoformat()} 00:00:00')"


async def month_partitions(conn: AsyncConnection) -> list[MonthPartition] | None:
    """The table's month partitions in order; ``None`` when it is not partitioned."""
    rows = (
        await conn.execute(
            text(
                "SELECT PARTITION_NAME FROM information_schema.PARTITIONS "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :table "
                "ORDER BY PARTITION_ORDINAL_POSITION"
            ).execution_options(**ALL_SITES),
            {"table": TABLE},
        )
    ).scalars()
    names = [name for name in rows if name is not None]
    if not names:
        return None
    months: list[MonthPartition] = []
    for name in names:
        match = _NAME.match(name)
        if match is not None:
            months.append(MonthPartition(date(int(match[1]), int(match[2]), 1), name))
    return sorted(months)


async def create_ahead(conn: AsyncConnection, now: datetime, ahead: int) -> list[str]:
    """Make sure the months up to ``ahead`` after the current one have their partitions;
    returns the partitions created."""
    months = await month_partitions(conn)
    if months is None:
        return []
    target = month_of(now)
    for _ in range(ahead):
        target = next_month(target)
    month = next_month(months[-1].month) if months else month_of(now)
    wanted: list[date] = []
    while month <= target:
        wanted.append(month)
        month = next_month(month)
    if not wanted:
        return []
    parts = [*(partition_sql(m) for m in wanted), CATCH_ALL_SQL]
    await conn.execute(
        text(f"ALTER TABLE {TABLE} REORGANIZE PARTITION {CATCH_ALL} INTO ({', '.join(parts)})")
    )
    return [partition_name(m) for m in wanted]


async def drop_before(conn: AsyncConnection, cutoff: datetime) -> list[str]:
    """Drop the month partitions whose every row is older than ``cutoff``; returns them."""
    months = await month_partitions(conn)
    if not months:
        return []
    expired = [p.name for p in months if p.bound <= cutoff]
    if expired:
        await conn.execute(text(f"ALTER TABLE {TABLE} DROP PARTITION {', '.join(expired)}"))
    return expired
