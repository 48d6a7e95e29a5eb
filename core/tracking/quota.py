"""Monthly quotas: the month a moment counts in (UTC) and when that month ends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


def month_of(now: float) -> str:
    """``"2026-12"`` for any moment of December 2026 (UTC)."""
    moment = datetime.fromtimestamp(now, UTC)
    return f"{moment.year:04d}-{moment.month:02d}"


def month_end(now: float) -> float:
    """The Unix time the month of ``now`` ends (the next month's first second, UTC)."""
    moment = datetime.fromtimestamp(now, UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return datetime(year, month, 1, tzinfo=UTC).timestamp()


def end_of_month(month: str) -> float:
    """The Unix time ``"2026-12"`` ends (2027-01-01 00:00 UTC)."""
    year, number = (int(part) for part in month.split("-"))
    return month_end(datetime(year, number, 1, tzinfo=UTC).timestamp())


@dataclass(frozen=True, slots=True)
class QuotaState:
    limit: int
    used: int
    #: Unix time the count starts over.
    reset_at: float

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def headers(self) -> dict[str, str]:
        """``X-Quota-*`` of every answer (``X-Quota-Reset``: Unix seconds of the reset)."""
        return {
            "X-Quota-Limit": str(self.limit),
            "X-Quota-Remaining": str(self.remaining),
            "X-Quota-Reset": str(int(self.reset_at)),
        }

    def retry_after(self, now: float) -> int:
        """Seconds until the reset, at least one."""
        return max(1, int(self.reset_at - now + 0.999))


#: The warning levels of a quota, in percent of its limit: the configured early one, and used up.
USED_UP = 100


def warning_level(used: int, limit: int, percent: int) -> int:
    """The highest warning level ``used`` of ``limit`` has reached: ``USED_UP`` (100) once the
    limit is used up, ``percent`` (the early warning) from that share on, else 0. A limit of 0
    (a site switched off on purpose) warns of nothing."""
    if limit <= 0:
        return 0
    if used >= limit:
        return USED_UP
    # Integers only: 80 % of 1,000,000,000,001 must not round down through a float.
    if used * 100 >= limit * percent:
        return percent
    return 0
