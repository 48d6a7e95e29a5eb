"""Consent lifetimes expressed the way policies state them: calendar months plus days.

"Analytics consent lasts 6 months" means the same day-of-month six months later, not 180 days,
so lifetimes are added on the UTC calendar (the day is clamped to the end of shorter months).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from core.errors import ValidationFailed

_SPEC = re.compile(r"^\s*(\d{1,4})\s*(mo|d|h)\s*$")


@dataclass(frozen=True, slots=True)
class Ttl:
    """A lifetime of ``months`` calendar months plus ``days`` days plus ``hours`` hours."""

    months: int = 0
    days: int = 0
    hours: int = 0

    def __post_init__(self) -> None:
        if self.months < 0 or self.days < 0 or self.hours < 0:
            raise ValueError("a consent lifetime cannot be negative")
        if self.months == 0 and self.days == 0 and self.hours == 0:
            raise ValueError("a consent lifetime must be positive")

    def expires_at(self, start: float) -> float:
        """The instant (epoch seconds) at which a choice made at ``start`` stops being valid."""
        moment = datetime.fromtimestamp(start, tz=UTC)
        if self.months:
            moment = _add_months(moment, self.months)
        return moment.timestamp() + self.days * 86_400 + self.hours * 3_600

    def spec(self) -> str:
        parts = []
        if self.months:
            parts.append(f"{self.months}mo")
        if self.days:
            parts.append(f"{self.days}d")
        if self.hours:
            parts.append(f"{self.hours}h")
        return "".join(parts)


def parse_ttl(text: str) -> Ttl:
    """Parse ``"6mo"``, ``"90d"`` or ``"12h"`` (one unit) into a :class:`Ttl`."""
    match = _SPEC.match(text)
    if match is None:
        raise ValidationFailed(
            f"invalid consent lifetime {text!r}; expected e.g. '6mo', '90d' or '12h'",
            details={"value": text},
        )
    amount, unit = int(match.group(1)), match.group(2)
    try:
        if unit == "mo":
            return Ttl(months=amount)
        if unit == "d":
            return Ttl(days=amount)
        return Ttl(hours=amount)
    except ValueError as exc:
        raise ValidationFailed(str(exc), details={"value": text}) from exc


def _add_months(moment: datetime, months: int) -> datetime:
    month_index = moment.month - 1 + months
    year = moment.year + month_index // 12
    month = month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)
