"""Degrade mode's decision: entered after a sustained overload, left only after a sustained calm
well below the thresholds, so a load hovering around a threshold never flaps it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.overload.hysteresis import Change, Hysteresis
from service.overload.monitor import OverloadMonitor
from service.overload.settings import DegradeSettings

LIMITS = {"lag": 100.0, "p99": 1000.0}


def machine() -> Hysteresis:
    return Hysteresis(enter_after=2.0, exit_after=10.0, exit_ratio=0.5)


def test_entered_after_a_sustained_overload_and_left_after_a_sustained_calm() -> None:
    h = machine()
    assert h.evaluate(0.0, {"lag": 150, "p99": 10}, LIMITS) is None
    assert h.evaluate(1.0, {"lag": 150, "p99": 10}, LIMITS) is None
    assert h.evaluate(2.0, {"lag": 150, "p99": 10}, LIMITS) == Change(True, ("lag",))
    assert h.degraded and h.since == 2.0
    # Below the threshold but above half of it: still degraded, however long.
    for t in range(3, 40):
        assert h.evaluate(float(t), {"lag": 60, "p99": 900}, LIMITS) is None
    assert h.evaluate(40.0, {"lag": 10, "p99": 10}, LIMITS) is None
    assert h.evaluate(49.0, {"lag": 10, "p99": 10}, LIMITS) is None
    assert h.evaluate(50.0, {"lag": 10, "p99": 10}, LIMITS) == Change(False, ("lag",))
    assert not h.degraded


def test_a_short_spike_does_not_enter_and_a_signal_without_threshold_is_ignored() -> None:
    h = machine()
    h.evaluate(0.0, {"lag": 500}, LIMITS)
    h.evaluate(1.5, {"lag": 10}, LIMITS)
    assert h.evaluate(3.0, {"lag": 500}, LIMITS) is None  # the run started again at 3.0
    assert not h.degraded
    off = {"lag": 0.0}
    assert h.evaluate(10.0, {"lag": 10_000}, off) is None


@given(st.lists(st.floats(min_value=0.51, max_value=3.0), min_size=1, max_size=200))
def test_no_flapping_while_the_load_stays_above_the_exit_band(factors: list[float]) -> None:
    h = machine()
    h.evaluate(0.0, {"lag": 200}, LIMITS)
    h.evaluate(2.0, {"lag": 200}, LIMITS)
    assert h.degraded
    for n, factor in enumerate(factors):
        change = h.evaluate(3.0 + n, {"lag": 100 * factor}, LIMITS)
        assert change is None
        assert h.degraded


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        Hysteresis(enter_after=1, exit_after=1, exit_ratio=0)
    with pytest.raises(ValueError):
        Hysteresis(enter_after=-1, exit_after=1, exit_ratio=0.5)


def test_the_monitor_reads_request_p99_and_switches() -> None:
    now = [100.0]
    settings = DegradeSettings(degrade_p99_ms=500, degrade_loop_lag_ms=0, degrade_enter_seconds=1)
    monitor = OverloadMonitor(settings, monotonic=lambda: now[0])
    for _ in range(100):
        monitor.record(0.9)  # 900 ms each
    monitor.evaluate(now[0])
    assert not monitor.shedding and monitor.signals["p99_ms"] == pytest.approx(900)
    now[0] += 1.0
    for _ in range(100):
        monitor.record(0.9)
    monitor.evaluate(now[0])
    assert monitor.shedding
    # The slow requests age out of the window; fast ones keep the p99 low.
    now[0] += 30.0
    monitor.record(0.001)
    monitor.evaluate(now[0])
    assert monitor.shedding  # the calm must last exit_seconds
    now[0] += settings.degrade_exit_seconds
    monitor.record(0.001)
    monitor.evaluate(now[0])
    assert not monitor.shedding


def test_forced_modes() -> None:
    assert OverloadMonitor(DegradeSettings(degrade_mode="on")).shedding
    assert not OverloadMonitor(DegradeSettings(degrade_mode="off")).shedding
