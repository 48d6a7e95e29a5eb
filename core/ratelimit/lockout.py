"""Failure-counting lockouts: N failures within a window lock a key, escalating on repeat.

Syntax: ``<n> failures in <window> lock <duration>[, <duration>...] [forget after <duration>]``,
for example ``5 failures in 15 minutes lock 15 minutes, 1 hour, 1 day forget after 1 day``.
The k-th lock (counting from 0) lasts ``durations[min(k, len - 1)]``; the escalation level is
forgotten ``forget`` after the end of the last lock. A success clears the failure count (not the
escalation level, so an attacker who also guesses right once keeps escalating). Failures while
locked are not counted: the caller refuses them before checking the secret.

The transitions are pure functions over ``LockoutState`` so the in-process store applies them
directly and the Redis script (``service/lua/ratelimit_lockout.lua``) restates them; the contract
tests hold both to these functions. Times are integer microseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from core.errors import ValidationFailed
from core.ratelimit.durations import format_duration, parse_duration
from core.ratelimit.policy import validate_name

MAX_THRESHOLD = 1000
MAX_STEPS = 10
DEFAULT_FORGET = 86400 * 1_000_000
#: A year; also keeps the Redis script's sums exact (Lua numbers are doubles).
MAX_DURATION = 366 * 86400 * 1_000_000

_RULE = re.compile(
    r"^\s*(\d{1,4})\s+failures?\s+in\s+(.+?)\s+lock\s+(.+?)(?:\s+forget\s+after\s+(.+?))?\s*$"
)


@dataclass(frozen=True, slots=True)
class LockoutRule:
    name: str
    threshold: int
    window: int
    durations: tuple[int, ...]
    forget: int = DEFAULT_FORGET

    def duration_for(self, level: int) -> int:
        return self.durations[min(level, len(self.durations) - 1)]

    def describe(self) -> str:
        steps = ", ".join(format_duration(d) for d in self.durations)
        return (
            f"{self.threshold} failures in {format_duration(self.window)} lock {steps} "
            f"forget after {format_duration(self.forget)}"
        )


@dataclass(frozen=True, slots=True)
class LockoutState:
    failures: int = 0
    window_ends: int = 0
    level: int = 0
    locked_until: int = 0
    level_expires: int = 0

    def locked(self, now: int) -> bool:
        return self.locked_until > now

    def expires_at(self) -> int:
        """After this instant the state is equivalent to no state at all."""
        return max(self.window_ends, self.locked_until, self.level_expires)


@dataclass(frozen=True, slots=True)
class LockEvent:
    """A key just became locked."""

    rule: str
    key: str
    until: int
    level: int  # 1 for the first lock, 2 for the first escalation, ...
    duration: int


def parse_lockout_rule(name: str, spec: str) -> LockoutRule:
    validate_name(name)
    match = _RULE.match(spec.lower())
    if match is None:
        raise _invalid(name, spec, "expected '<n> failures in <window> lock <duration>[, ...]'")
    threshold = int(match.group(1))
    if not 1 <= threshold <= MAX_THRESHOLD:
        raise _invalid(name, spec, f"failures must be within 1..{MAX_THRESHOLD}")
    try:
        window = parse_duration(match.group(2))
        steps = [part.strip() for part in re.split(r",|\bthen\b", match.group(3))]
        durations = tuple(parse_duration(step) for step in steps if step)
        forget = parse_duration(match.group(4)) if match.group(4) else DEFAULT_FORGET
    except ValidationFailed as error:
        raise _invalid(name, spec, error.message) from error
    if not 1 <= len(durations) <= MAX_STEPS:
        raise _invalid(name, spec, f"give 1..{MAX_STEPS} lock durations")
    if max(window, forget, *durations) > MAX_DURATION:
        raise _invalid(name, spec, "durations must not exceed a year")
    return LockoutRule(name, threshold, window, durations, forget)


def record_failure(
    rule: LockoutRule, state: LockoutState, now: int
) -> tuple[LockoutState, int | None]:
    """Count one failure; returns the new state and the lock's level when it just locked."""
    if state.locked(now):
        return state, None
    level = state.level if state.level_expires > now else 0
    failures, window_ends = state.failures, state.window_ends
    if window_ends <= now:
        failures, window_ends = 0, now + rule.window
    failures += 1
    if failures < rule.threshold:
        expires = state.level_expires if level else 0
        return LockoutState(failures, window_ends, level, 0, expires), None
    until = now + rule.duration_for(level)
    return LockoutState(0, 0, level + 1, until, until + rule.forget), level + 1


def record_success(state: LockoutState) -> LockoutState:
    return replace(state, failures=0, window_ends=0)


def _invalid(name: str, spec: str, reason: str) -> ValidationFailed:
    return ValidationFailed(
        f"invalid lockout rule {name!r} ({spec!r}): {reason}",
        details={"rule": name, "spec": spec, "reason": reason},
    )
