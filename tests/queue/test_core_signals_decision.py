from __future__ import annotations

import math
import random

import pytest

from core.jobs import (
    AttemptOutcome,
    BackoffPolicy,
    DecisionKind,
    Job,
    PermanentFailure,
    RetryLater,
    decide,
)


def _job(attempt: int, max_attempts: int = 3) -> Job:
    return Job(
        key="k", queue="q", payload={}, attempt=attempt, max_attempts=max_attempts, enqueued_at=0
    )


POLICY = BackoffPolicy(base=1.0, cap=30.0)


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_retry_later_rejects_bad_delays(bad: float) -> None:
    with pytest.raises(ValueError):
        RetryLater(bad)


def test_signals_carry_their_data() -> None:
    assert RetryLater(3, "429").after_seconds == 3.0
    assert PermanentFailure("chat not found").reason == "chat not found"


def test_success_completes() -> None:
    d = decide(_job(1), AttemptOutcome.SUCCEEDED, policy=POLICY, rng=random.Random(0))
    assert d.kind is DecisionKind.COMPLETE


def test_failure_with_attempts_left_retries_with_backoff() -> None:
    # seed=1
    d = decide(_job(2), AttemptOutcome.FAILED, policy=POLICY, rng=random.Random(1), reason="500")
    assert d.kind is DecisionKind.RETRY
    assert d.consume_attempt
    assert 0.0 <= d.delay <= 2.0
    assert d.reason == "500"


@pytest.mark.parametrize("outcome", [AttemptOutcome.FAILED, AttemptOutcome.TIMED_OUT])
def test_failure_on_last_attempt_is_dead(outcome: AttemptOutcome) -> None:
    d = decide(_job(3), outcome, policy=POLICY, rng=random.Random(0))
    assert d.kind is DecisionKind.DEAD


def test_deferral_keeps_the_attempt_even_on_the_last_one() -> None:
    d = decide(
        _job(3), AttemptOutcome.DEFERRED, policy=POLICY, rng=random.Random(0), defer_seconds=7
    )
    assert d.kind is DecisionKind.DEFER
    assert not d.consume_attempt
    assert d.delay == 7


@pytest.mark.parametrize("outcome", [AttemptOutcome.PERMANENT, AttemptOutcome.EXPIRED])
def test_permanent_and_expired_are_dead_on_the_first_attempt(outcome: AttemptOutcome) -> None:
    d = decide(_job(1), outcome, policy=POLICY, rng=random.Random(0))
    assert d.kind is DecisionKind.DEAD


def test_job_budget_flags() -> None:
    assert _job(3).is_last_attempt
    assert not _job(2).is_last_attempt
    assert _job(4).over_budget
    assert not _job(3).over_budget
