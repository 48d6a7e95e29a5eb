"""The compiled GCRA table agrees with the plain-Python reference on every answer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from native.gcra import GcraTable
from tests.reference.gcra_ref import GcraReference

KEYS = [f"k{i}" for i in range(12)]
POLICIES = [(1_000_000, 1), (600_000, 20), (1, 1), (142_857, 7), (3_000_000, 3)]

step = st.tuples(
    st.sampled_from(KEYS),
    st.sampled_from(POLICIES),
    st.integers(0, 25),  # cost before clamping to the policy's burst
    st.integers(-200_000, 4_000_000),  # clock movement; a little backwards sometimes
)


@settings(max_examples=150, deadline=None)
@given(capacity=st.integers(1, 16), steps=st.lists(step, max_size=120))
def test_kernel_matches_reference(
    capacity: int, steps: list[tuple[str, tuple[int, int], int, int]]
) -> None:
    kernel = GcraTable(capacity)
    reference = GcraReference(capacity)
    now = 1_700_000_000_000_000
    for key, (interval, burst), raw_cost, delta in steps:
        now = max(0, now + delta)
        cost = min(raw_cost, burst)
        assert tuple(kernel.check(key, now, interval, burst, cost)) == reference.check(
            key, now, interval, burst, cost
        )
        assert len(kernel) == len(reference.tats) <= capacity
    assert sorted(kernel.items()) == sorted(reference.tats.items())
    assert kernel.evictions == reference.evictions


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["check", "remove", "sweep"]), st.sampled_from(KEYS)),
        max_size=80,
    )
)
def test_remove_and_sweep_match_reference(ops: list[tuple[str, str]]) -> None:
    kernel = GcraTable(64)
    reference = GcraReference(64)
    now = 10_000_000
    for op, key in ops:
        now += 150_000
        if op == "check":
            assert tuple(kernel.check(key, now, 1_000_000, 5, 1)) == reference.check(
                key, now, 1_000_000, 5, 1
            )
        elif op == "remove":
            assert kernel.remove(key) == reference.remove(key)
        else:
            assert kernel.sweep(now) == reference.sweep(now)
        assert kernel.tat(key, now) == reference.get(key, now)
    assert sorted(kernel.items()) == sorted(reference.tats.items())


def test_burst_then_refusal_with_exact_timings() -> None:
    table = GcraTable(10)
    now = 1_000_000_000
    answers = [table.check("ip", now, 600_000, 20, 1) for _ in range(21)]
    assert [a.allowed for a in answers] == [True] * 20 + [False]
    assert answers[0].remaining == 19 and answers[19].remaining == 0
    assert answers[20].retry_after == 600_000
    assert answers[20].reset_after == 20 * 600_000
    later = table.check("ip", now + 600_000, 600_000, 20, 1)
    assert later.allowed and later.remaining == 0


def test_flood_of_distinct_keys_stays_bounded() -> None:
    table = GcraTable(1000)
    for i in range(20_000):
        table.check(f"flood-{i}", 5_000_000 + i, 1_000_000, 10, 1)
    assert len(table) <= 1000
    assert table.evictions >= 19_000
    assert table.slot_count <= 2048


def test_expired_entries_are_evicted_before_live_ones() -> None:
    table = GcraTable(8)
    for i in range(7):
        table.check(f"old-{i}", 0, 1_000, 1, 1)  # expire at 1_000
    table.check("live", 100_000, 1_000_000, 1, 1)
    table.check("new", 200_000, 1_000_000, 1, 1)
    assert {key for key, _ in table.items()} == {"live", "new"}


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"key": 5}, TypeError),
        ({"now": -1}, ValueError),
        ({"interval": 0}, ValueError),
        ({"burst": 0}, ValueError),
        ({"cost": 21}, ValueError),
        ({"cost": -1}, ValueError),
        ({"now": 1.5}, TypeError),
    ],
)
def test_wrapper_rejects_bad_input(kwargs: dict[str, object], error: type[Exception]) -> None:
    args: dict[str, object] = {"key": "k", "now": 0, "interval": 1000, "burst": 20, "cost": 1}
    args.update(kwargs)
    with pytest.raises(error):
        GcraTable(4).check(**args)  # type: ignore[arg-type]


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        GcraTable(0)
