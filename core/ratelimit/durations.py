"""Durations written for people (``15 minutes``, ``1h``, ``30s``) as integer microseconds."""

from __future__ import annotations

import re

from core.errors import ValidationFailed

MICROS_PER_SECOND = 1_000_000

UNIT_SECONDS: dict[str, int] = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
}

_DURATION = re.compile(r"^\s*(\d{1,9})?\s*([a-z]+)\s*$")


def parse_duration(text: str) -> int:
    """``"15 minutes"`` -> 900_000_000; a bare unit (``"minute"``) means one of it."""
    match = _DURATION.match(text.lower())
    if match is None or match.group(2) not in UNIT_SECONDS:
        raise ValidationFailed(
            f"invalid duration {text!r}: expected a number and a unit "
            f"(s, min, hour, day), e.g. '15 minutes'",
            details={"value": text},
        )
    count = int(match.group(1)) if match.group(1) is not None else 1
    if count < 1:
        raise ValidationFailed(f"duration {text!r} must be positive", details={"value": text})
    return count * UNIT_SECONDS[match.group(2)] * MICROS_PER_SECOND


def format_duration(micros: int) -> str:
    """The largest whole unit that divides ``micros`` (``900_000_000`` -> ``"15 minutes"``)."""
    seconds, rest = divmod(micros, MICROS_PER_SECOND)
    if rest or seconds == 0:
        return f"{micros / MICROS_PER_SECOND:g} seconds"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}" + ("s" if count != 1 else "")
    return f"{seconds} second" + ("s" if seconds != 1 else "")
