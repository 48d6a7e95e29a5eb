"""A site's local days and hours as UTC instants, and as SQL bucket expressions.

Dashboards speak in the site's calendar: ``from``/``to`` are local dates, a day bucket is a local
day (23 or 25 hours long across a DST change) and an hour bucket a local wall-clock hour (the
hour repeated when clocks go back is two buckets, told apart by their UTC offset). Rows are
stored in UTC, so every local boundary is turned into an instant here, and bucketing in SQL
adds the offset in force at each row's instant: the offset is piecewise constant over a range,
so it is a short ``CASE`` over the range's transitions (two a year), found with ``zoneinfo``
alone (SQLite has no time zones, MariaDB's need tables loaded).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, case, cast, func, literal, literal_column
from sqlalchemy.sql.elements import ColumnElement

Bucket = Literal["hour", "day"]

DAY_SECONDS = 86_400
HOUR_SECONDS = 3_600
EPOCH = date(1970, 1, 1)
#: Offsets are searched for at this step; no zone changes its offset twice within it.
_SCAN_STEP = timedelta(hours=12)
#: Hour buckets are enumerated at this step: every offset in use is a multiple of 15 minutes.
_QUARTER = timedelta(minutes=15)


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of ``day`` in ``zone``, in UTC.

    Local midnight taken with ``fold=0``: when midnight is skipped (a DST gap at 00:00) that is
    the transition itself, when it happens twice, its first occurrence.
    """
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def local_date(instant: datetime, zone: ZoneInfo) -> date:
    return instant.astimezone(zone).date()


def offset_seconds(instant: datetime, zone: ZoneInfo) -> int:
    offset = instant.astimezone(zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


@dataclass(frozen=True, slots=True)
class Period:
    """Local dates ``first`` to ``last`` (both included) of a zone, and their UTC bounds."""

    first: date
    last: date
    zone: ZoneInfo

    @property
    def start(self) -> datetime:
        return day_start(self.first, self.zone)

    @property
    def end(self) -> datetime:
        """The first instant after ``last`` (exclusive bound)."""
        return day_start(self.last + timedelta(days=1), self.zone)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def dates(self) -> Iterator[date]:
        for n in range(self.days):
            yield self.first + timedelta(days=n)


def offset_segments(zone: ZoneInfo, start: datetime, end: datetime) -> list[tuple[datetime, int]]:
    """``[(since, offset), ...]``: the zone's UTC offset (seconds) from each ``since`` on, over
    ``[start, end)``; the first ``since`` is ``start``."""
    segments = [(start, offset_seconds(start, zone))]
    probe = start
    while probe < end:
        following = min(probe + _SCAN_STEP, end)
        before, after = segments[-1][1], offset_seconds(following, zone)
        if after != before:
            segments.append((_transition(zone, probe, following, before), after))
        probe = following
    return segments


def _transition(zone: ZoneInfo, low: datetime, high: datetime, before: int) -> datetime:
    """The first whole second in ``(low, high]`` whose offset is no longer ``before``."""
    while (high - low) > timedelta(seconds=1):
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if middle <= low:
            break
        if offset_seconds(middle, zone) == before:
            low = middle
        else:
            high = middle
    return high


def epoch_seconds(column: ColumnElement[Any], dialect: str) -> ColumnElement[int]:
    """Whole seconds since 1970 of a naive-UTC datetime column, on either database."""
    if dialect == "sqlite":
        return cast(func.strftime("%s", column), Integer)
    return func.timestampdiff(
        literal_column("SECOND"), literal("1970-01-01 00:00:00"), column, type_=Integer
    )


def offset_expression(
    column: ColumnElement[Any], segments: list[tuple[datetime, int]]
) -> ColumnElement[int]:
    """The zone's offset at each row's instant (seconds)."""
    if len(segments) == 1:
        return literal(segments[0][1], Integer)
    # Each offset holds until the next segment starts: a row before that start has it.
    whens = [
        (column < since, literal(offset, Integer))
        for (since, _), (_, offset) in zip(segments[1:], segments[:-1], strict=True)
    ]
    return case(*whens, else_=literal(segments[-1][1], Integer))


@dataclass(frozen=True, slots=True)
class LocalClock:
    """Buckets of local time over one range, as SQL expressions and as Python keys."""

    zone: ZoneInfo
    segments: list[tuple[datetime, int]]
    dialect: str

    @classmethod
    def over(cls, zone: ZoneInfo, start: datetime, end: datetime, dialect: str) -> LocalClock:
        return cls(zone, offset_segments(zone, start, end), dialect)

    def local_seconds(self, column: ColumnElement[Any]) -> ColumnElement[int]:
        return epoch_seconds(column, self.dialect) + offset_expression(column, self.segments)

    def day_index(self, column: ColumnElement[Any]) -> ColumnElement[int]:
        """Days since 1970-01-01 of the row's local date."""
        return self.local_seconds(column) // DAY_SECONDS

    def hour_keys(self, column: ColumnElement[Any]) -> list[ColumnElement[int]]:
        """The local wall-clock hour, and the offset where it changes in the range: together
        they name one real hour (see ``hour_key``)."""
        keys = [self.local_seconds(column) // HOUR_SECONDS]
        # A constant is left out: MariaDB would read "GROUP BY 10800" as a column position.
        if len(self.segments) > 1:
            keys.append(offset_expression(column, self.segments))
        return keys

    def hour_key(self, found: tuple[Any, ...]) -> tuple[int, int]:
        """A row grouped by ``hour_keys`` as ``bucket_slots`` names its hour."""
        offset = found[1] if len(found) > 1 else self.segments[0][1]
        return int(found[0]), int(offset)


def date_of_index(index: int) -> date:
    return EPOCH + timedelta(days=int(index))


def index_of_date(day: date) -> int:
    return (day - EPOCH).days


@dataclass(frozen=True, slots=True)
class BucketSlot:
    """One bucket of a timeline: its key (as the SQL groups it) and its first instant."""

    key: tuple[int, ...]
    start: datetime  # aware, in the site's zone


def bucket_slots(period: Period, bucket: Bucket) -> list[BucketSlot]:
    """Every bucket of ``period`` in order, empty ones included."""
    if bucket == "day":
        return [
            BucketSlot((index_of_date(d),), day_start(d, period.zone).astimezone(period.zone))
            for d in period.dates()
        ]
    slots: list[BucketSlot] = []
    seen: set[tuple[int, ...]] = set()
    instant, end = period.start, period.end
    while instant < end:
        local = instant.astimezone(period.zone)
        offset = offset_seconds(instant, period.zone)
        wall = int(local.replace(tzinfo=UTC).timestamp())
        key = (wall // HOUR_SECONDS, offset)
        if key not in seen:
            seen.add(key)
            top = local.replace(minute=0, second=0, microsecond=0)
            slots.append(BucketSlot(key, top))
        instant += _QUARTER
    return slots
