"""How long a site's raw rows live, and so which of its days dashboards read from rollups.

A site keeps raw events and sessions for its retention (the site config's ``retention_months``,
else ``tracking_retention_months``); the maintenance job deletes what is older. Days that start
before that cutoff may have lost raw rows, so dashboards read them from ``track_daily``; the
later days are counted from raw rows (exact, and fresh to the minute).
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from service.tracking.dashboard_time import Period, day_start, local_date

MIN_RETENTION_MONTHS = 1
MAX_RETENTION_MONTHS = 120


def retention_months(config: Mapping[str, Any], default: int) -> int:
    """The site's ``retention_months`` when it is a whole number in range, else ``default``."""
    value = config.get("retention_months")
    if isinstance(value, bool) or not isinstance(value, int):
        return default
    return value if MIN_RETENTION_MONTHS <= value <= MAX_RETENTION_MONTHS else default


def months_before(instant: datetime, months: int) -> datetime:
    """The same wall-clock instant ``months`` calendar months earlier (the day clamped to the
    month's length: 31 March minus one month is 28 or 29 February)."""
    serial = instant.year * 12 + instant.month - 1 - months
    year, month = divmod(serial, 12)
    day = min(instant.day, calendar.monthrange(year, month + 1)[1])
    return instant.replace(year=year, month=month + 1, day=day)


def first_full_day(cutoff: datetime, zone: ZoneInfo) -> date:
    """The first local day that starts at or after ``cutoff``."""
    day = local_date(cutoff, zone)
    return day if day_start(day, zone) >= cutoff else day + timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Horizon:
    """Where a site's raw rows begin."""

    cutoff: datetime  # raw rows older than this may be gone
    first_raw_day: date  # the first local day counted from raw rows

    @classmethod
    def of(cls, now: datetime, months: int, zone: ZoneInfo) -> Horizon:
        cutoff = months_before(now, months)
        return cls(cutoff, first_full_day(cutoff, zone))

    def split(self, period: Period) -> tuple[Period | None, Period | None]:
        """``period`` as (days read from rollups, days counted from raw rows); either may be
        ``None``."""
        if period.last < self.first_raw_day:
            return period, None
        if period.first >= self.first_raw_day:
            return None, period
        rolled = Period(period.first, self.first_raw_day - timedelta(days=1), period.zone)
        return rolled, Period(self.first_raw_day, period.last, period.zone)
