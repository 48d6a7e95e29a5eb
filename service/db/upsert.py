"""One dialect-aware upsert: INSERT ... ON CONFLICT (SQLite) / ON DUPLICATE KEY UPDATE (MariaDB)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.expression import ColumnElement, Executable


def upsert_stmt(
    dialect: str,
    table: Table,
    rows: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    index_elements: Sequence[str],
    update_columns: Sequence[str] | Mapping[str, Any] | None = None,
) -> Executable:
    """Insert ``rows``; on a clash of the unique key ``index_elements`` update ``update_columns``.

    ``update_columns`` is either column names (take the new row's value) or a mapping of column
    name to an expression built with ``excluded(table, name)`` / ``table.c.name`` for arithmetic
    such as ``count = count + excluded.count``. ``None`` or empty means "insert or ignore".
    MariaDB resolves the clash on any unique key, so ``index_elements`` must name the table's
    only unique key that the rows can collide on.
    """
    values = [dict(rows)] if isinstance(rows, Mapping) else [dict(r) for r in rows]
    if dialect == "sqlite":
        s_stmt = sqlite_insert(table).values(values)
        s_updates = _updates(update_columns, lambda name: s_stmt.excluded[name])
        if not s_updates:
            return s_stmt.on_conflict_do_nothing(index_elements=list(index_elements))
        return s_stmt.on_conflict_do_update(index_elements=list(index_elements), set_=s_updates)
    m_stmt = mysql_insert(table).values(values)
    m_updates = _updates(update_columns, lambda name: m_stmt.inserted[name])
    if not m_updates:
        # A no-op assignment is MariaDB's portable "insert ignore" that still reports errors
        # other than the duplicate key (INSERT IGNORE would silence those too).
        first = index_elements[0]
        return m_stmt.on_duplicate_key_update({first: table.c[first]})
    return m_stmt.on_duplicate_key_update(m_updates)


def _updates(
    update_columns: Sequence[str] | Mapping[str, Any] | None,
    new_value: Any,
) -> dict[str, Any]:
    if not update_columns:
        return {}
    if isinstance(update_columns, Mapping):
        return {
            name: (expr(new_value) if callable(expr) else expr)
            for name, expr in update_columns.items()
        }
    return {name: new_value(name) for name in update_columns}


def excluded_value(name: str) -> Any:
    """For ``update_columns`` mappings: a callable picking the new row's value of ``name``."""

    def pick(new_value: Any) -> ColumnElement[Any]:
        result: ColumnElement[Any] = new_value(name)
        return result

    return pick
