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
