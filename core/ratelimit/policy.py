"""Rate-limit policies and their readable syntax.

``<count>/<period> [burst <n>] [fail open|closed] [shadow]``, for example ``100/minute burst 20``
or ``5/15 minutes fail closed``. The sustained rate is ``count`` per ``period``; ``burst`` is how
many units a client may take at once from a full bucket (default: ``count``). ``fail`` sets what
happens when the backend is unreachable (default ``open``); ``shadow`` counts and logs refusals
without enforcing them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from core.errors import ValidationFailed
from core.ratelimit.durations import MICROS_PER_SECOND, format_duration, parse_duration

MAX_COUNT = 1_000_000_000
MAX_BURST = 1_000_000
#: A year: longer periods are almost certainly a typo and would overflow nothing but sense.
MAX_PERIOD = 366 * 86400 * MICROS_PER_SECOND
#: Bound of ``interval * burst``: keeps every sum the Redis script makes (Lua numbers are
#: doubles) an exact integer below 2**53 microseconds for the next two centuries.
MAX_TOLERANCE = 10 * 366 * 86400 * MICROS_PER_SECOND

_NAME = re.compile(r"^[a-z][a-z0-9_.\-]{0,63}$")
_RATE = re.compile(r"^\s*(\d{1,10})\s*/\s*(.+?)\s*$")


class FailureMode(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    count: int
    period: int  # microseconds
    burst: int
    failure_mode: FailureMode = FailureMode.OPEN
    shadow: bool = False
    #: Emission interval in microseconds: the time one unit takes to come back. Rounded to the
    #: microsecond so every implementation (kernel, Lua, reference) does integer arithmetic.
    interval: int = field(init=False, compare=False)
    #: Time a full bucket takes to refill, in microseconds (``interval * burst``).
    tolerance: int = field(init=False, compare=False)

    def __post_init__(self) -> None:
        interval = max(1, round(self.period / self.count))
        object.__setattr__(self, "interval", interval)
        object.__setattr__(self, "tolerance", interval * self.burst)

    def describe(self) -> str:
        text = f"{self.count}/{format_duration(self.period)} burst {self.burst}"
        text += f" fail {self.failure_mode.value}"
        return text + (" shadow" if self.shadow else "")


def validate_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValidationFailed(
            f"invalid policy name {name!r}: lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter, at most 64 characters",
            details={"name": name},
        )
    return name


def parse_policy(name: str, spec: str) -> Policy:
    """Parse ``spec`` (see the module docstring); raises ``ValidationFailed`` with the reason."""
    validate_name(name)
    words = spec.lower().split()
    options: dict[str, str | bool] = {}
    rate_words: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        if word in ("burst", "fail"):
            if index + 1 >= len(words):
                raise _invalid(name, spec, f"'{word}' needs a value")
            if word in options:
                raise _invalid(name, spec, f"'{word}' given twice")
            options[word] = words[index + 1]
            index += 2
        elif word == "shadow":
            options["shadow"] = True
            index += 1
        elif options:
            raise _invalid(name, spec, f"unexpected {word!r} after the options")
        else:
            rate_words.append(word)
            index += 1
    match = _RATE.match(" ".join(rate_words))
    if match is None:
        raise _invalid(name, spec, "expected '<count>/<period>', e.g. '100/minute'")
    count = int(match.group(1))
    if not 1 <= count <= MAX_COUNT:
        raise _invalid(name, spec, f"count must be within 1..{MAX_COUNT}")
    try:
        period = parse_duration(match.group(2))
    except ValidationFailed as error:
        raise _invalid(name, spec, error.message) from error
    if period > MAX_PERIOD:
        raise _invalid(name, spec, "period must not exceed a year")
    if period < count:
        raise _invalid(name, spec, "rate is above one unit per microsecond")
    burst_text = options.get("burst", str(count))
    assert isinstance(burst_text, str)
    if not burst_text.isdigit() or not 1 <= int(burst_text) <= MAX_BURST:
        raise _invalid(name, spec, f"burst must be an integer within 1..{MAX_BURST}")
    mode_text = options.get("fail", FailureMode.OPEN.value)
    if mode_text not in (FailureMode.OPEN.value, FailureMode.CLOSED.value):
        raise _invalid(name, spec, "fail must be 'open' or 'closed'")
    policy = Policy(
        name=name,
        count=count,
        period=period,
        burst=int(burst_text),
        failure_mode=FailureMode(mode_text),
        shadow=bool(options.get("shadow", False)),
    )
    if policy.tolerance > MAX_TOLERANCE:
        raise _invalid(name, spec, "a full bucket would take over 10 years to refill")
    return policy


def _invalid(name: str, spec: str, reason: str) -> ValidationFailed:
    return ValidationFailed(
        f"invalid rate-limit policy {name!r} ({spec!r}): {reason}",
        details={"policy": name, "spec": spec, "reason": reason},
    )
