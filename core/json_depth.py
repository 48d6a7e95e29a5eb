"""How deeply a JSON value nests, and trimming it to a depth a JSON column accepts.

MariaDB checks every JSON column with ``JSON_VALID``, which refuses documents nested 32 levels
or deeper; a caller-supplied sub-document stored inside an envelope of our own must therefore
stay well below that, or the insert fails on MariaDB only (and passes on SQLite).
"""

from __future__ import annotations

from typing import Any

#: Deepest nesting accepted for a caller-supplied part of a stored JSON document; the
#: envelopes the features wrap around such parts add a few levels, all under MariaDB's 32.
MAX_STORED_DEPTH = 16


def json_depth(value: Any) -> int:
    """Levels of objects/arrays in ``value`` (a scalar is 0, ``{}`` and ``[]`` are 1)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        stack.extend((child, level) for child in children)
    return deepest


def trim_depth(value: Any, limit: int) -> Any:
    """A copy of ``value`` whose objects/arrays below ``limit`` levels are replaced by None."""
    if limit <= 0:
        return None if isinstance(value, dict | list | tuple) else value
    if isinstance(value, dict):
        return {key: trim_depth(child, limit - 1) for key, child in value.items()}
    if isinstance(value, list | tuple):
        return [trim_depth(child, limit - 1) for child in value]
    return value
