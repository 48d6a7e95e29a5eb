"""Handle-time statistics and the ETA with its range (core/support/eta.py)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.support.eta import DEFAULT_ALPHA, Eta, HandleStats, estimate, record_handle


def test_the_first_handle_time_sets_the_average_and_half_of_it_as_spread() -> None:
    assert record_handle(None, 240.0) == HandleStats(240.0, 120.0, 1)


def test_later_handle_times_move_the_averages_by_alpha() -> None:
    stats = record_handle(None, 100.0)
    stats = record_handle(stats, 200.0)
    # spread 50 + 0.2 * (|200 - 100| - 50) = 60 (with the ewma before this sample)
    assert stats.spread == pytest.approx(60.0)
    assert stats.ewma == pytest.approx(120.0)
    assert stats.count == 2
    heavy = record_handle(record_handle(None, 100.0), 200.0, alpha=0.5)
    assert (heavy.ewma, heavy.spread) == (150.0, 75.0)
    only_latest = record_handle(record_handle(None, 100.0), 200.0, alpha=1.0)
    assert (only_latest.ewma, only_latest.spread) == (200.0, 100.0)


def test_a_negative_handle_time_counts_as_zero() -> None:
    assert record_handle(None, -4.0) == HandleStats(0.0, 0.0, 1)


def test_steady_handle_times_converge_and_the_spread_fades() -> None:
    stats = record_handle(None, 600.0)
    for _ in range(80):
        stats = record_handle(stats, 180.0)
    assert stats.ewma == pytest.approx(180.0, abs=1e-3)
    assert stats.spread < 1e-3
    assert stats.count == 81


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.01, math.nan])
def test_alpha_must_be_a_weight(alpha: float) -> None:
    with pytest.raises(ValueError):
        record_handle(None, 1.0, alpha=alpha)


def test_default_alpha() -> None:
    assert DEFAULT_ALPHA == 0.2


def test_before_data_the_default_handle_time_is_used() -> None:
    eta = estimate(3, None, default_handle=300.0)
    margin = 150.0 * math.sqrt(3)
    assert eta == Eta(900.0, 900.0 - margin, 900.0 + margin)


def test_position_times_the_average_with_the_spread_widening_by_the_square_root() -> None:
    eta = estimate(4, 120.0, default_handle=300.0, spread=30.0)
    assert eta == Eta(480.0, 480.0 - 60.0, 480.0 + 60.0)
    first = estimate(1, 120.0, default_handle=300.0, spread=30.0)
    assert first == Eta(120.0, 90.0, 150.0)


def test_the_low_end_never_goes_below_zero() -> None:
    eta = estimate(1, 10.0, default_handle=300.0, spread=25.0)
    assert eta == Eta(10.0, 0.0, 35.0)


def test_busy_admins_free_up_in_turn() -> None:
    # Two admins talked 100 s and 250 s of an expected 300 s: free after 200 s and 50 s,
    # then each takes a customer every 300 s.
    def at(position: int) -> float:
        return estimate(
            position, 300.0, default_handle=60.0, spread=0.0, free_soon=[100.0, 250.0]
        ).seconds

    assert [at(p) for p in (1, 2, 3, 4, 5)] == [50.0, 200.0, 350.0, 500.0, 650.0]
    wide = estimate(3, 300.0, default_handle=60.0, spread=40.0, free_soon=[100.0, 250.0])
    assert wide == Eta(350.0, 350.0 - 40.0 * math.sqrt(2), 350.0 + 40.0 * math.sqrt(2))


def test_an_admin_over_the_average_may_free_up_any_moment() -> None:
    eta = estimate(1, 300.0, default_handle=60.0, spread=0.0, free_soon=[900.0])
    assert eta.seconds == 0.0
    assert estimate(2, 300.0, default_handle=60.0, free_soon=[900.0]).seconds == 300.0


def test_one_admin_who_just_started_is_the_plain_formula() -> None:
    plain = estimate(5, 200.0, default_handle=60.0, spread=20.0)
    assert estimate(5, 200.0, default_handle=60.0, spread=20.0, free_soon=[0.0]) == plain


@pytest.mark.parametrize(
    ("position", "default_handle"), [(0, 300.0), (-1, 300.0), (1, 0.0), (1, -5.0)]
)
def test_bad_arguments_are_refused(position: int, default_handle: float) -> None:
    with pytest.raises(ValueError):
        estimate(position, None, default_handle=default_handle)


@settings(max_examples=200, deadline=None)
@given(
    position=st.integers(1, 500),
    ewma=st.none() | st.floats(0.0, 3600.0),
    spread=st.none() | st.floats(0.0, 1800.0),
    talked=st.lists(st.floats(0.0, 7200.0), max_size=6),
)
def test_the_range_holds_the_estimate_and_later_places_wait_longer(
    position: int, ewma: float | None, spread: float | None, talked: list[float]
) -> None:
    eta = estimate(position, ewma, default_handle=300.0, spread=spread, free_soon=talked)
    later = estimate(position + 1, ewma, default_handle=300.0, spread=spread, free_soon=talked)
    assert 0.0 <= eta.low <= eta.seconds <= eta.high
    # Up to rounding: a sum computed in two orders may differ in its last bit.
    assert later.seconds >= eta.seconds * (1 - 1e-12)
    assert later.high - later.seconds >= (eta.high - eta.seconds) * (1 - 1e-12)
