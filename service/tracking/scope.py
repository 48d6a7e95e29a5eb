"""Tenant scope: every query of a site's tracking rows names the site.

A request that reaches a site's data first resolves a ``SiteScope`` (``service/tracking/
access.py``: a member's role, a platform admin, or the site's own script), and every statement
on a site-scoped table (``SITE_SCOPED`` in ``service/db/tables/tracking.py``) is built with
``where_site`` or ``site_values`` from it. An id of another site then simply matches no row:
the caller answers 404, never 403 and never the row.

``install_scope_guard`` (the tests install it on every engine) fails any statement on a
site-scoped table whose SQL has no ``site_id`` condition; maintenance that works across sites on
purpose says so with ``ALL_SITES`` as an execution option.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, Table, event
from sqlalchemy.engine import Engine

from service.db.tables.tracking import SITE_SCOPED

Role = Literal["owner", "editor", "viewer", "admin", "script"]
ROLES_THAT_EDIT = frozenset({"owner", "editor", "admin"})
ROLES_THAT_OWN = frozenset({"owner", "admin"})

#: ``connection.execution_options(**ALL_SITES)``: a statement that spans sites on purpose
#: (retention, dedup expiry, the maintenance job).
ALL_SITES: dict[str, Any] = {"kervan_all_sites": True}


@dataclass(frozen=True, slots=True)
class SiteScope:
    """Who acts on which site: every tracking query takes one."""

    site_id: int
    role: Role
    #: ``person:<id>``, ``admin:<id>`` (or the API key's name), ``script``.
    actor: str
    #: The site's time zone (dashboards' days) and currency.
    time_zone: str = "UTC"
    currency: str = "EUR"

    @property
    def can_edit(self) -> bool:
        return self.role in ROLES_THAT_EDIT

    @property
    def can_manage(self) -> bool:
        """Invite and remove members, change roles, connect ad accounts."""
        return self.role in ROLES_THAT_OWN


def where_site(table: Table, scope: SiteScope) -> ColumnElement[bool]:
    """The condition every statement on ``table`` carries."""
    if table not in SITE_SCOPED:
        raise ValueError(f"{table.name} is not a site-scoped table")
    return table.c.site_id == scope.site_id


def site_values(scope: SiteScope, **values: Any) -> dict[str, Any]:
    """Insert values with the scope's site id (a caller cannot pass another one)."""
    if "site_id" in values:
        raise ValueError("site_id comes from the scope")
    return {"site_id": scope.site_id, **values}


_SCOPED_NAMES = tuple(table.name for table in SITE_SCOPED)
_TABLE = re.compile(r"\b(" + "|".join(_SCOPED_NAMES) + r")\b")
_SITE_CONDITION = re.compile(r"\bsite_id\s*(=|IN\b)", re.IGNORECASE)


class UnscopedQuery(AssertionError):
    """A statement on a site-scoped table without a site condition (a programming error)."""


def check_statement(statement: str, options: dict[str, Any]) -> None:
    """Raise ``UnscopedQuery`` for a SELECT, UPDATE or DELETE on a site-scoped table that has
    no ``site_id =`` / ``site_id IN`` condition (an INSERT names the site in its values)."""
    if options.get("kervan_all_sites"):
        return
    head = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
    if head not in ("SELECT", "UPDATE", "DELETE", "WITH"):
        return
    if _TABLE.search(statement) and not _SITE_CONDITION.search(statement):
        raise UnscopedQuery(
            f"no site condition in a statement on a site-scoped table:\n{statement}"
        )


def _guard(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    options = context.execution_options if context is not None else {}
    check_statement(statement, dict(options))


def install_scope_guard(target: type[Engine] | Engine = Engine) -> None:
    """Check every statement ``target`` runs: an engine, or by default every engine of the
    process (the tests install it so)."""
    if not event.contains(target, "before_cursor_execute", _guard):
        event.listen(target, "before_cursor_execute", _guard)


def remove_scope_guard(target: type[Engine] | Engine = Engine) -> None:
    if event.contains(target, "before_cursor_execute", _guard):
        event.remove(target, "before_cursor_execute", _guard)
