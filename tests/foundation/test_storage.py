"""Storage: migrations, the upsert helper, UTC timestamps, JSON columns and error wrapping,
on SQLite and on the real MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Integer, MetaData, String, Table, select, text

from core.errors import Conflict, StorageError
from service.audit import list_audit, record_audit
from service.db import Database
from service.db.migrate import alembic_config, migrate
from service.db.types import JSONType, UTCDateTime
from service.db.upsert import upsert_stmt

scratch = MetaData()
counters = Table(
    "scratch_counters",
    scratch,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("hits", Integer, nullable=False),
    Column("label", String(64), nullable=True),
    Column("doc", JSONType, nullable=True),
    Column("at", UTCDateTime(), nullable=True),
)


@pytest.fixture
async def scratch_table(database: Database):  # type: ignore[no-untyped-def]
    async with database.begin() as conn:
        await conn.run_sync(scratch.create_all)
    yield counters
    async with database.begin() as conn:
        await conn.run_sync(scratch.drop_all)


async def test_migrations_are_idempotent(database: Database) -> None:
    await migrate(database)  # already at head: a no-op, not an error
    async with database.connect() as conn:
        versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    assert {v[0] for v in versions} == heads
    assert heads  # every feature branch head applied


async def test_upsert_inserts_then_updates(database: Database, scratch_table: Table) -> None:
    async with database.begin() as conn:
        await conn.execute(
            upsert_stmt(
                database.dialect,
                scratch_table,
                [{"name": "a", "hits": 1, "label": "x"}, {"name": "b", "hits": 2, "label": "y"}],
                index_elements=["name"],
                update_columns=["hits"],
            )
        )
        await conn.execute(
            upsert_stmt(
                database.dialect,
                scratch_table,
                {"name": "a", "hits": 10, "label": "changed"},
                index_elements=["name"],
                update_columns=["hits"],
            )
        )
    async with database.connect() as conn:
        rows = (await conn.execute(select(scratch_table).order_by(scratch_table.c.name))).all()
    assert [(r.name, r.hits, r.label) for r in rows] == [("a", 10, "x"), ("b", 2, "y")]


async def test_upsert_with_expression_and_insert_ignore(
    database: Database, scratch_table: Table
) -> None:
    def add_hits(new):  # type: ignore[no-untyped-def]
        return scratch_table.c.hits + new("hits")

    for _ in range(3):
        async with database.begin() as conn:
            await conn.execute(
                upsert_stmt(
                    database.dialect,
                    scratch_table,
                    {"name": "c", "hits": 5},
                    index_elements=["name"],
                    update_columns={"hits": add_hits},
                )
            )
    async with database.begin() as conn:
        await conn.execute(
            upsert_stmt(
                database.dialect,
                scratch_table,
                {"name": "c", "hits": 999},
                index_elements=["name"],
            )
        )
    async with database.connect() as conn:
        hits = (await conn.execute(select(scratch_table.c.hits))).scalar_one()
    assert hits == 15


async def test_json_and_utc_round_trip(database: Database, scratch_table: Table) -> None:
    local = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=3)))
    doc = {"ü": [1, 2.5, None], "nested": {"ok": True}}
    async with database.begin() as conn:
        await conn.execute(scratch_table.insert().values(name="j", hits=0, doc=doc, at=local))
    async with database.connect() as conn:
        row = (await conn.execute(select(scratch_table))).one()
    assert row.doc == doc
    assert row.at == local
    assert row.at.tzinfo == UTC


async def test_naive_datetimes_are_refused(database: Database, scratch_table: Table) -> None:
    with pytest.raises(StorageError):
        async with database.begin() as conn:
            await conn.execute(
                scratch_table.insert().values(name="n", hits=0, at=datetime(2026, 1, 1))
            )


async def test_integrity_error_is_conflict_and_rolls_back(
    database: Database, scratch_table: Table
) -> None:
    with pytest.raises(Conflict):
        async with database.begin() as conn:
            await conn.execute(scratch_table.insert().values(name="dup", hits=1))
            await conn.execute(scratch_table.insert().values(name="other", hits=1))
            await conn.execute(scratch_table.insert().values(name="dup", hits=2))
    async with database.connect() as conn:
        count = len((await conn.execute(select(scratch_table))).all())
    assert count == 0  # the whole transaction was rolled back


async def test_audit_trail(database: Database) -> None:
    async with database.begin() as conn:
        await record_audit(conn, actor="admin:1", action="lock.lift", subject="ip:1.2.3.4")
        await record_audit(
            conn, actor="system", action="lock.set", subject="ip:1.2.3.4", details={"for": 900}
        )
    async with database.connect() as conn:
        rows = await list_audit(conn, subject="ip:1.2.3.4")
    assert [r["action"] for r in rows] == ["lock.set", "lock.lift"]
    assert rows[0]["details"] == {"for": 900}


async def test_unreachable_database_is_storage_error() -> None:
    db = Database("mariadb+aiomysql://root@127.0.0.1:1/test")
    try:
        with pytest.raises(StorageError):
            await db.ping()
    finally:
        await db.dispose()
