"""Policy and lockout-rule syntax: what parses, what it means, and clear refusals."""

from __future__ import annotations

import pytest

from core.errors import ValidationFailed
from core.ratelimit import (
    FailureMode,
    build_catalog,
    parse_assignments,
    parse_lockout_rule,
    parse_policy,
)
from core.ratelimit.decision import decision_from_tat, degraded_decision
from native.gcra import GcraTable

MINUTE = 60_000_000


def test_rate_with_burst() -> None:
    policy = parse_policy("public.ip", "100/minute burst 20")
    assert (policy.count, policy.period, policy.burst) == (100, MINUTE, 20)
    assert policy.interval == 600_000
    assert policy.tolerance == 12_000_000
    assert policy.failure_mode is FailureMode.OPEN and not policy.shadow


@pytest.mark.parametrize(
    ("spec", "count", "period", "burst", "mode", "shadow"),
    [
        ("5/15 minutes fail closed", 5, 15 * MINUTE, 5, FailureMode.CLOSED, False),
        ("10/s", 10, 1_000_000, 10, FailureMode.OPEN, False),
        ("3 / 1 hour burst 1 shadow", 3, 60 * MINUTE, 1, FailureMode.OPEN, True),
        ("1/day shadow fail closed", 1, 1440 * MINUTE, 1, FailureMode.CLOSED, True),
        ("7/10sec", 7, 10_000_000, 7, FailureMode.OPEN, False),
    ],
)
def test_variants(
    spec: str, count: int, period: int, burst: int, mode: FailureMode, shadow: bool
) -> None:
    policy = parse_policy("p", spec)
    assert (policy.count, policy.period, policy.burst) == (count, period, burst)
    assert (policy.failure_mode, policy.shadow) == (mode, shadow)
    assert parse_policy("p", policy.describe()) == policy


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("100", "expected '<count>/<period>'"),
        ("0/minute", "count must be"),
        ("10/fortnight", "invalid duration"),
        ("10/minute burst", "'burst' needs a value"),
        ("10/minute burst 0", "burst must be"),
        ("10/minute burst x", "burst must be"),
        ("10/minute fail maybe", "fail must be"),
        ("10/minute burst 2 burst 3", "given twice"),
        ("10/minute shadow extra", "unexpected"),
        ("10/2 years", "invalid duration"),
        ("2000000/s", "above one unit per microsecond"),
        ("1/day burst 5000", "over 10 years to refill"),
    ],
)
def test_invalid_policies_name_the_reason(spec: str, reason: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_policy("p", spec)
    assert reason in caught.value.message
    assert caught.value.details["spec"] == spec


def test_invalid_policy_name() -> None:
    with pytest.raises(ValidationFailed, match="invalid policy name"):
        parse_policy("Bad Name", "1/s")


def test_lockout_rule() -> None:
    rule = parse_lockout_rule("otp", "5 failures in 10 minutes lock 15 minutes, 1 hour")
    assert rule.threshold == 5
    assert rule.window == 10 * MINUTE
    assert rule.durations == (15 * MINUTE, 60 * MINUTE)
    assert rule.forget == 1440 * MINUTE
    assert rule.duration_for(0) == 15 * MINUTE
    assert rule.duration_for(7) == 60 * MINUTE
    assert parse_lockout_rule("otp", rule.describe()) == rule
    then = parse_lockout_rule("x", "3 failures in 1 minute lock 1 minute then 5 minutes")
    assert then.durations == (MINUTE, 5 * MINUTE)


@pytest.mark.parametrize(
    "spec",
    [
        "5 failures lock 1 hour",
        "0 failures in 1 minute lock 1 hour",
        "5 failures in 1 ms lock 1h",
        "5 failures in 1 minute lock 400 days",
        "5 failures in 1 minute lock 1 hour forget after 999 days",
    ],
)
def test_invalid_lockout_rules(spec: str) -> None:
    with pytest.raises(ValidationFailed, match="invalid lockout rule"):
        parse_lockout_rule("otp", spec)


def test_catalog_merges_overrides_and_reports_every_error() -> None:
    catalog = build_catalog({"otp.send": "3/hour fail closed", "custom": "1/s"})
    assert catalog.policy("otp.send").count == 3
    assert catalog.policy("custom").burst == 1
    assert catalog.policy("public.ip").count == 600
    with pytest.raises(KeyError, match="unknown rate-limit policy"):
        catalog.policy("nope")
    with pytest.raises(ValidationFailed) as caught:
        build_catalog({"a": "bad", "b": "1/minute burst -1"}, {"otp": "never"})
    assert len(caught.value.details["errors"]) == 3


def test_parse_assignments() -> None:
    assert parse_assignments(" a=1/s ; b = 2/minute burst 1;", "policy") == {
        "a": "1/s",
        "b": "2/minute burst 1",
    }
    with pytest.raises(ValidationFailed, match="expected 'name=spec'"):
        parse_assignments("a", "policy")


def test_decision_from_tat_matches_kernel_arithmetic() -> None:
    """The Redis path derives its answer from the raw TAT; it must equal the kernel's."""
    policy = parse_policy("p", "10/s burst 3")
    table = GcraTable(8)
    now = 5_000_000
    for step in range(12):
        now += 37_000 * (step % 4)
        cost = step % 3
        before = table.tat("k", now)
        result = table.check("k", now, policy.interval, policy.burst, cost)
        tat = table.tat("k", now) if result.allowed else before
        derived = decision_from_tat(policy, allowed=result.allowed, tat=tat, now=now, cost=cost)
        assert (derived.allowed, derived.remaining, derived.retry_after, derived.reset_after) == (
            tuple(result)
        )


def test_degraded_refusal_asks_for_a_short_retry() -> None:
    slow = parse_policy("otp.send", "5/hour fail closed")
    fast = parse_policy("login", "10/second fail closed")
    assert degraded_decision(slow, allowed=False).retry_after_seconds == 5
    assert degraded_decision(fast, allowed=False).retry_after == 100_000
    opened = degraded_decision(slow, allowed=True)
    assert opened.allowed and opened.degraded and opened.retry_after == 0
