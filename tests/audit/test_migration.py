"""Migration 0025 chains the rows an older install wrote, as ``record_audit`` would have.

The database is brought to the revision before (``0024_ads_conversions``), rows are written
with the old columns only, then every head is applied: the old rows end up in their site's
chain (subject ``site:<id>``) or the platform's, verified, and new records continue the chains.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pymysql
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from service.audit import record_audit
from service.audit.verify import verify
from service.db import Database
from service.db.migrate import migrate
from service.db.tables.foundation import audit_events, audit_heads
from tests.conftest import RUN_ID

T0 = datetime(2025, 6, 1, 8, 0, 0, 654321, tzinfo=UTC)
OLD_ROWS = [
    ("admin:ops", "site.created", "site:4", '{"name": "Shop", "domains": ["shop.example"]}'),
    ("system", "lock.set", "ip:1.2.3.4", '{"for": 900}'),
    ("person:3", "intent.sealed", "site:4", '{"intent": 1, "from": "pending", "to": "confirmed"}'),
    ("admin:ops", "job.replayed", "job:tg:1", None),
    ("admin:ops", "site.created", "site:9", '{"name": "Ünï", "domains": []}'),
]


@pytest.fixture(params=["sqlite", "mariadb"])
async def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of its own (the shared ones are migrated to the heads already)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    base = make_url(request.getfixturevalue("mariadb_url"))
    params = {
        "host": base.host or "127.0.0.1",
        "port": base.port or 3306,
        "user": base.username or "root",
        "password": base.password or "",
    }
    name = f"kervan_test_{RUN_ID}_audit_mig"
    conn = pymysql.connect(**params)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cur.execute(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
    finally:
        conn.close()
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        conn = pymysql.connect(**params)
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            conn.close()


async def test_existing_rows_are_chained_by_the_migration(fresh_url: str) -> None:
    database = Database(fresh_url)
    try:
        await migrate(database, "0024_ads_conversions")
        async with database.begin() as conn:
            for n, (actor, action, subject, details) in enumerate(OLD_ROWS):
                await conn.execute(
                    text(
                        "INSERT INTO audit_events (ts, actor, action, subject, details) "
                        "VALUES (:ts, :actor, :action, :subject, :details)"
                    ),
                    {
                        "ts": (T0 + timedelta(seconds=n)).replace(tzinfo=None),
                        "actor": actor,
                        "action": action,
                        "subject": subject,
                        "details": details,
                    },
                )
        await migrate(database)
        async with database.connect() as conn:
            rows = (await conn.execute(select(audit_events).order_by(audit_events.c.id))).all()
            heads = {r.chain: (r.seq, r.head_hash) for r in await conn.execute(select(audit_heads))}
        assert [(r.subject, r.site_id, r.chain, r.seq) for r in rows] == [
            ("site:4", 4, 4, 1),
            ("ip:1.2.3.4", None, 0, 1),
            ("site:4", 4, 4, 2),
            ("job:tg:1", None, 0, 2),
            ("site:9", 9, 9, 1),
        ]
        assert rows[4].details == {"name": "Ünï", "domains": []}
        assert heads == {0: (2, rows[3].hash), 4: (2, rows[2].hash), 9: (1, rows[4].hash)}
        reports = await verify(database)
        assert [(r.chain, r.ok, r.checked) for r in reports] == [
            (0, True, 2),
            (4, True, 2),
            (9, True, 1),
        ]

        async with database.begin() as conn:
            new = await record_audit(
                conn, actor="person:3", action="site.updated", subject="site:4"
            )
        assert (new.seq, new.prev_hash) == (3, rows[2].hash)
        assert all(r.ok for r in await verify(database))
    finally:
        await database.dispose()
