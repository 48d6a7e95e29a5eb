"""The compiled limiter front agrees with its plain-Python reference on every answer.

Same policies, same clock instants, same keys and costs: the decisions (type and every field),
the counters, the shadow callbacks and the tables' contents must all be equal.
"""

from __future__ import annotations

import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.clock import ManualClock
from core.ratelimit import Decision, build_catalog
from native.gcra import GcraTable
from native.limiter import Counters, LimiterFront
from tests.reference.limiter_ref import LimiterReference

SPECS = {
    "p.tight": "3/second burst 3",
    "p.slow": "100/minute burst 20",
    "p.odd": "7/10 seconds burst 4",
    "p.shadow": "2/minute burst 2 shadow",
    "p.fine": "1000000/second burst 1",
}
CATALOG = build_catalog(SPECS)
KEYS = ["a", "b", "203.0.113.7", "ü-key", ""]


def unknown(name: str) -> None:
    raise LookupError(f"no policy {name!r}")


def build(
    clock: ManualClock | None, capacity: int
) -> tuple[LimiterFront[Decision], dict[str, Counters], dict[str, GcraTable], list[Decision]]:
    shadowed: list[Decision] = []
    front = LimiterFront(Decision, None if clock is None else clock.now, unknown, shadowed.append)
    counters: dict[str, Counters] = {}
    tables: dict[str, GcraTable] = {}
    for name, policy in CATALOG.policies.items():
        counters[name], tables[name] = Counters(), GcraTable(capacity)
        front.add(
            name,
            policy,
            interval=policy.interval,
            burst=policy.burst,
            shadow=policy.shadow,
            table=tables[name],
            counters=counters[name],
        )
    return front, counters, tables, shadowed


step = st.tuples(
    st.sampled_from(sorted(SPECS)),
    st.sampled_from(KEYS),
    st.integers(0, 20),  # cost before clamping to the policy's burst
    st.sampled_from([0.0, 0.0, 0.000001, 0.0004, 0.05, 0.3, 1.7, 12.0, 200.0]),
)


@settings(max_examples=120, deadline=None)
@given(capacity=st.integers(1, 6), steps=st.lists(step, max_size=100))
def test_front_matches_reference(capacity: int, steps: list[tuple[str, str, int, float]]) -> None:
    clock = ManualClock(start=1_700_000_000.25)
    front, counters, tables, shadowed = build(clock, capacity)
    ref_shadowed: list[Decision] = []
    reference = LimiterReference(Decision, clock.now, ref_shadowed.append)
    ref_counters = {
        name: reference.add(name, p, p.interval, p.burst, p.shadow, capacity)
        for name, p in CATALOG.policies.items()
    }
    for name, key, raw_cost, advance in steps:
        clock.advance(advance)
        cost = min(raw_cost, CATALOG.policy(name).burst)
        got = front.check(name, key, cost)
        expected = reference.check(name, key, cost)
        assert type(got) is Decision
        assert got == expected
        assert got.refused == expected.refused
    assert shadowed == ref_shadowed
    for name in SPECS:
        mine, theirs = counters[name], ref_counters[name]
        assert (mine.checks, mine.refused, mine.shadow_refused, mine.failures) == (
            theirs.checks,
            theirs.refused,
            theirs.shadow_refused,
            0,
        )
        assert sorted(tables[name].items()) == sorted(reference.entries[name].table.tats.items())


def test_default_cost_is_one_and_zero_only_reads() -> None:
    clock = ManualClock()
    front, counters, _, _ = build(clock, 8)
    assert front.check("p.tight", "k").remaining == 2
    assert front.check("p.tight", "k", 0).remaining == 2
    assert front.check("p.tight", "k", 2).remaining == 0
    refused = front.check("p.tight", "k")
    assert refused.refused and refused.retry_after == 333_333
    assert (counters["p.tight"].checks, counters["p.tight"].refused) == (4, 1)


def test_system_clock_is_read_in_microseconds() -> None:
    front, _, tables, _ = build(None, 8)
    before = time.time_ns() // 1000
    decision = front.check("p.slow", "k")
    after = time.time_ns() // 1000
    interval = CATALOG.policy("p.slow").interval
    assert decision.allowed and decision.reset_after == interval
    [(key, tat)] = tables["p.slow"].items()
    assert key == "k" and before + interval <= tat <= after + interval


@pytest.mark.parametrize(
    "cost",
    [-1, 4, True, 1.0, "1", None, 2**64, -(2**70)],
    ids=repr,
)
def test_cost_outside_the_policy_is_refused_before_any_state_changes(cost: object) -> None:
    front, counters, tables, _ = build(ManualClock(), 8)
    with pytest.raises(ValueError, match=r"cost must be an int within 0\.\.3 for 'p.tight'"):
        front.check("p.tight", "k", cost)
    assert counters["p.tight"].checks == 0 and len(tables["p.tight"]) == 0


def test_unknown_names_and_bad_keys() -> None:
    front, _, _, _ = build(ManualClock(), 8)
    with pytest.raises(LookupError, match="no policy 'nope'"):
        front.check("nope", "k")
    with pytest.raises(TypeError):
        front.check("p.tight", 42)
    with pytest.raises(TypeError):
        front.check(None, "k")
    quiet = LimiterFront(Decision, None, lambda name: None, lambda decision: None)
    with pytest.raises(KeyError):
        quiet.check("nope", "k")


def test_clock_out_of_range_is_an_error_not_a_wrapped_time() -> None:
    clock = ManualClock(start=-5.0)
    front, counters, _, _ = build(clock, 8)
    with pytest.raises(ValueError, match="clock is out of range"):
        front.check("p.tight", "k")
    assert counters["p.tight"].checks == 0


def test_decisions_hold_their_references_exactly() -> None:
    """Items are written into the tuple in C: a missing or extra reference would leak the
    policy (or free it while a decision still holds it)."""
    front, _, _, _ = build(ManualClock(), 8)
    policy = CATALOG.policy("p.slow")
    base = sys.getrefcount(policy)
    kept = [front.check("p.slow", f"k{i % 3}") for i in range(500)]
    assert sys.getrefcount(policy) == base + 500
    assert all(d.policy is policy for d in kept)
    del kept
    assert sys.getrefcount(policy) == base


def test_decisions_built_in_place_behave_like_constructed_ones() -> None:
    front, _, _, _ = build(ManualClock(), 8)
    built = front.check("p.odd", "k", 2)
    constructed = Decision(*built)
    assert built == constructed and hash(built) == hash(constructed)
    assert {built: 1}[constructed] == 1
    assert built._replace(remaining=0) == constructed._replace(remaining=0)
    interval = CATALOG.policy("p.odd").interval
    assert len(built) == 6 and built[1:] == (True, 2, 0, 2 * interval, False)


@pytest.mark.parametrize(
    "decision_type",
    [tuple, dict, type("Plain", (tuple,), {})],
    ids=["tuple", "dict", "unnamed-subclass"],
)
def test_wrapper_refuses_a_decision_type_it_cannot_build(decision_type: type) -> None:
    with pytest.raises(TypeError, match="named tuple"):
        LimiterFront(decision_type, None, unknown, print)


def test_wrapper_validates_each_policy() -> None:
    front = LimiterFront(Decision, None, unknown, print)
    policy = CATALOG.policy("p.tight")

    def add(
        name: str = "x", interval: object = 10, burst: object = 2, table: object = None
    ) -> None:
        front.add(
            name,
            policy,
            interval=interval,  # type: ignore[arg-type]
            burst=burst,  # type: ignore[arg-type]
            shadow=False,
            table=GcraTable(4) if table is None else table,  # type: ignore[arg-type]
            counters=Counters(),
        )

    with pytest.raises(ValueError, match="interval"):
        add(interval=0)
    with pytest.raises(TypeError, match="interval"):
        add(interval=1.5)
    with pytest.raises(ValueError, match="burst"):
        add(interval=1 << 61, burst=3)
    with pytest.raises(TypeError, match="GcraTable"):
        add(table=object())
    add()
    with pytest.raises(ValueError, match="already declared"):
        add()
    assert front.check("x", "k").remaining == 1
