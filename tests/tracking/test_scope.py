"""Tenant scope: statements on a site's rows must name the site, a site answers only its own
origins, and an actor sees a site only as a member (or platform admin)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, insert, select

from core.errors import Forbidden, NotFound, ValidationFailed
from service.db import Database
from service.db.tables.tracking import people, site_members, track_intents
from service.tracking.access import Actor, require_edit, require_manage, scope_for
from service.tracking.scope import (
    ALL_SITES,
    SiteScope,
    UnscopedQuery,
    check_statement,
    site_values,
    where_site,
)
from service.tracking.sites import check_domains, create_site

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_statements_on_site_rows_must_name_the_site() -> None:
    with pytest.raises(UnscopedQuery):
        check_statement("SELECT * FROM track_intents WHERE id = ?", {})
    with pytest.raises(UnscopedQuery):
        check_statement("UPDATE track_sessions SET page_views = 1 WHERE id = 3", {})
    with pytest.raises(UnscopedQuery):
        check_statement("DELETE FROM track_events WHERE received_at < ?", {})
    check_statement("SELECT * FROM track_intents WHERE track_intents.site_id = ? AND id = ?", {})
    check_statement("SELECT * FROM track_daily WHERE site_id IN (1, 2)", {})
    check_statement("INSERT INTO track_events (site_id, kind) VALUES (?, ?)", {})
    check_statement("SELECT * FROM sites WHERE id = ?", {})  # the tenant table itself
    check_statement("DELETE FROM track_event_ids WHERE received_at < ?", ALL_SITES)


def test_where_site_and_values_come_from_the_scope() -> None:
    scope = SiteScope(site_id=7, role="viewer", actor="person:1")
    assert str(where_site(track_intents, scope).compile()) == "track_intents.site_id = :site_id_1"
    assert site_values(scope, kind="phone") == {"site_id": 7, "kind": "phone"}
    with pytest.raises(ValueError):
        site_values(scope, site_id=8)
    with pytest.raises(ValueError):
        where_site(people, scope)  # not a site's table


def test_domains_are_exact_hosts_and_origins_match_exactly() -> None:
    assert check_domains(["Example.com", "www.example.com", "example.com"]) == (
        "example.com",
        "www.example.com",
    )
    for bad in (["https://example.com"], ["*.example.com"], ["example.com/path"], []):
        with pytest.raises(ValidationFailed):
            check_domains(bad)


async def test_a_site_is_seen_only_by_its_members_and_admins(database: Database) -> None:
    async with database.begin() as conn:
        site = await create_site(
            conn,
            name="Örnek",
            domains=["example.com", "localhost:8080"],
            currency="try",
            time_zone="Europe/Istanbul",
            now=NOW,
        )
        other = await create_site(
            conn, name="B", domains=["b.example"], currency="EUR", time_zone="UTC", now=NOW
        )
        person = (
            await conn.execute(
                insert(people).values(
                    email="a@example.com", name="A", language="tr", created_at=NOW
                )
            )
        ).inserted_primary_key[0]
        await conn.execute(
            insert(site_members).values(
                site_id=site.id, person_id=person, role="viewer", created_at=NOW, updated_at=NOW
            )
        )
    assert site.currency == "TRY" and site.public_key.startswith("st_")
    assert site.allows_origin("https://example.com")
    assert site.allows_origin("http://localhost:8080")
    for origin in (
        "http://example.com",
        "https://example.com.evil.net",
        "https://evil.net/example.com",
        "https://sub.example.com",
        None,
    ):
        assert not site.allows_origin(origin)
    actor = Actor("person", str(person))
    async with database.connect() as conn:
        _, scope = await scope_for(conn, actor, site.id)
        assert (scope.role, scope.time_zone, scope.can_edit) == ("viewer", "Europe/Istanbul", False)
        with pytest.raises(Forbidden):
            require_edit(scope)
        with pytest.raises(Forbidden):
            require_manage(scope)
        with pytest.raises(NotFound):
            await scope_for(conn, actor, other.id)
        with pytest.raises(NotFound):
            await scope_for(conn, actor, 10**9)
        _, admin = await scope_for(conn, Actor("admin", "1"), other.id)
        assert admin.can_manage
        rows = (
            await conn.execute(select(track_intents.c.id).where(where_site(track_intents, scope)))
        ).all()
        assert rows == []
        with pytest.raises(UnscopedQuery):
            await conn.execute(select(track_intents.c.id).where(track_intents.c.id == 1))
    async with database.begin() as conn:
        await conn.execution_options(**ALL_SITES)
        await conn.execute(delete(site_members))
