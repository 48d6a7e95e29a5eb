"""core.json_depth: nesting depth of JSON values and trimming to a depth."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from core.json_depth import json_depth, trim_depth

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=2), children, max_size=3)
    ),
    max_leaves=30,
)


def reference_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((reference_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((reference_depth(v) for v in value), default=0)
    return 0


def test_depth_of_known_values() -> None:
    assert json_depth(1) == 0
    assert json_depth({}) == 1
    assert json_depth([[], {"a": [1]}]) == 3
    deep: Any = 0
    for _ in range(5000):  # deeper than the recursion limit: the count is iterative
        deep = [deep]
    assert json_depth(deep) == 5000


def test_trim_replaces_what_lies_below_the_limit() -> None:
    value = {"a": {"b": {"c": 1}}, "d": 2}
    assert trim_depth(value, 2) == {"a": {"b": None}, "d": 2}
    assert trim_depth(value, 0) is None
    assert trim_depth(5, 0) == 5


@settings(max_examples=200, derandomize=True)
@given(JSON, st.integers(min_value=0, max_value=6))
def test_trim_matches_the_reference(value: Any, limit: int) -> None:
    assert json_depth(value) == reference_depth(value)
    trimmed = trim_depth(value, limit)
    assert json_depth(trimmed) <= limit
    if json_depth(value) <= limit:
        assert trimmed == value
