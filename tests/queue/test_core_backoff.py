from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.jobs import BackoffPolicy, full_jitter_delay
from core.jobs.backoff import backoff_ceiling


def test_ceiling_doubles_until_the_cap() -> None:
    assert [backoff_ceiling(n, 1.0, 10.0) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_ceiling_survives_huge_attempt_numbers() -> None:
    assert backoff_ceiling(10_000, 0.5, 300.0) == 300.0


@pytest.mark.parametrize("attempt", [0, -1])
def test_attempt_numbers_start_at_one(attempt: int) -> None:
    with pytest.raises(ValueError):
        backoff_ceiling(attempt, 1.0, 10.0)


def test_negative_policy_is_rejected() -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(base=-1.0)


@settings(max_examples=200)
@given(
    attempt=st.integers(min_value=1, max_value=80),
    base=st.floats(min_value=0.0, max_value=100.0),
    cap=st.floats(min_value=0.0, max_value=3600.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_delay_is_within_zero_and_the_ceiling(
    attempt: int, base: float, cap: float, seed: int
) -> None:
    delay = full_jitter_delay(attempt, base, cap, random.Random(seed))
    assert 0.0 <= delay <= min(cap, base * 2 ** (attempt - 1))


def test_jitter_spreads_delays_over_the_whole_range() -> None:
    # seed=7: full jitter must use the whole [0, ceiling] range, not cluster near the ceiling
    rng = random.Random(7)
    delays = [full_jitter_delay(4, 1.0, 100.0, rng) for _ in range(2000)]
    assert min(delays) < 0.5
    assert max(delays) > 7.5
    assert 3.6 < sum(delays) / len(delays) < 4.4  # the mean of U(0, 8)


def test_same_seed_same_delays() -> None:
    policy = BackoffPolicy(base=2.0, cap=60.0)
    first = [policy.delay(n, random.Random(42)) for n in range(1, 6)]
    second = [policy.delay(n, random.Random(42)) for n in range(1, 6)]
    assert first == second
