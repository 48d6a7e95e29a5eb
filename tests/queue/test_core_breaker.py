from __future__ import annotations

import pytest

from core.clock import ManualClock
from core.jobs import BreakerConfig, BreakerState, CircuitBreaker

CONFIG = BreakerConfig(
    window_seconds=10, min_calls=4, failure_ratio=0.5, open_seconds=5, successes_to_close=2
)


def _breaker() -> tuple[CircuitBreaker, ManualClock]:
    clock = ManualClock()
    return CircuitBreaker(CONFIG, clock), clock


def test_stays_closed_below_min_calls() -> None:
    breaker, _ = _breaker()
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_opens_when_the_error_rate_reaches_the_ratio() -> None:
    breaker, _ = _breaker()
    for ok in (True, False, True, False):
        assert breaker.allow()
        (breaker.record_success if ok else breaker.record_failure)()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_after() == pytest.approx(5.0)


def test_stays_closed_when_errors_are_rare() -> None:
    breaker, _ = _breaker()
    for i in range(20):
        breaker.allow()
        (breaker.record_failure if i % 3 == 2 else breaker.record_success)()
    assert breaker.state is BreakerState.CLOSED


def test_old_failures_leave_the_window() -> None:
    breaker, clock = _breaker()
    for _ in range(3):
        breaker.allow()
        breaker.record_failure()
    clock.advance(11)  # those three failures are now outside the 10 s window
    for ok in (True, True, True, False):
        breaker.allow()
        (breaker.record_success if ok else breaker.record_failure)()
    assert breaker.state is BreakerState.CLOSED


def _open(breaker: CircuitBreaker) -> None:
    for _ in range(4):
        breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN


def test_half_open_after_the_open_period_lets_one_probe_through() -> None:
    breaker, clock = _breaker()
    _open(breaker)
    clock.advance(4.9)
    assert breaker.state is BreakerState.OPEN
    clock.advance(0.2)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()  # only one probe at a time
    assert 0 < breaker.retry_after() <= 1.0


def test_successful_probes_close_the_breaker() -> None:
    breaker, clock = _breaker()
    _open(breaker)
    clock.advance(5)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    # a fresh window: one failure right after closing does not reopen it
    breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_failed_probe_reopens_for_a_full_period() -> None:
    breaker, clock = _breaker()
    _open(breaker)
    clock.advance(5)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after() == pytest.approx(5.0)


def test_neutral_probe_frees_the_slot() -> None:
    breaker, clock = _breaker()
    _open(breaker)
    clock.advance(5)
    assert breaker.allow()
    breaker.record_neutral()
    assert breaker.allow()


def test_late_result_while_open_is_ignored() -> None:
    breaker, _ = _breaker()
    _open(breaker)
    breaker.record_success()
    assert breaker.state is BreakerState.OPEN


@pytest.mark.parametrize(
    "kwargs",
    [{"window_seconds": 0}, {"min_calls": 0}, {"failure_ratio": 0}, {"failure_ratio": 1.5}],
)
def test_bad_config_is_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BreakerConfig(**kwargs)  # type: ignore[arg-type]
