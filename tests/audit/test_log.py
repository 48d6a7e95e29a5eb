"""The audit log in the database (SQLite and MariaDB): chains per site and for the platform,
the request id, verification, tamper detection and ``kervan audit verify``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, insert, select, update

from core.audit.chain import ChainHead, append
from service import cli
from service.audit import list_audit, record_audit
from service.audit.queries import AuditFilter, audit_page
from service.audit.verify import verify
from service.db import Database
from service.db.tables.foundation import audit_events, audit_heads
from service.logging import request_id_var

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


async def _write(database: Database) -> None:
    """Three records of site 1, two of site 2, two of the platform, interleaved."""
    async with database.begin() as conn:
        await record_audit(conn, actor="admin:ops", action="site.created", subject="site:1", ts=T0)
        await record_audit(conn, actor="system", action="lock.set", subject="ip:1.2.3.4", ts=T0)
        await record_audit(
            conn,
            actor="person:7",
            action="site.member.role_changed",
            subject="site:1",
            details={"person": 9},
            before={"role": "viewer"},
            after={"role": "editor"},
            ts=T0 + timedelta(minutes=1),
        )
    async with database.begin() as conn:
        await record_audit(conn, actor="admin:ops", action="site.created", subject="site:2", ts=T0)
        # An explicit site wins over the subject's.
        await record_audit(
            conn,
            actor="person:7",
            action="intent.sealed",
            subject="intent:55",
            site_id=1,
            ts=T0 + timedelta(minutes=2),
        )
        await record_audit(conn, actor="admin:ops", action="admin.login", subject="admin:ops")
        await record_audit(conn, actor="person:8", action="site.updated", subject="site:2")


async def _reports(database: Database, **which: object) -> dict[int, tuple[bool, int, str | None]]:
    reports = await verify(database, **which)  # type: ignore[arg-type]
    return {
        r.chain: (r.ok, r.checked, None if r.first_break is None else r.first_break.reason)
        for r in reports
    }


async def test_records_chain_per_site_and_for_the_platform(database: Database) -> None:
    await _write(database)
    async with database.connect() as conn:
        rows = (await conn.execute(select(audit_events).order_by(audit_events.c.id))).all()
        heads = {r.chain: r.seq for r in await conn.execute(select(audit_heads))}
    placed = [(r.action, r.site_id, r.chain, r.seq) for r in rows]
    assert placed == [
        ("site.created", 1, 1, 1),
        ("lock.set", None, 0, 1),
        ("site.member.role_changed", 1, 1, 2),
        ("site.created", 2, 2, 1),
        ("intent.sealed", 1, 1, 3),
        ("admin.login", None, 0, 2),
        ("site.updated", 2, 2, 2),
    ]
    assert heads == {0: 2, 1: 3, 2: 2}
    changed = rows[2]
    assert (changed.state_before, changed.state_after) == ({"role": "viewer"}, {"role": "editor"})
    assert changed.details == {"person": 9} and changed.request_id is None
    assert rows[1].prev_hash == "0" * 64 and rows[5].prev_hash == rows[1].hash
    assert await _reports(database) == {0: (True, 2, None), 1: (True, 3, None), 2: (True, 2, None)}
    assert await _reports(database, site_id=2) == {2: (True, 2, None)}
    assert await _reports(database, platform=True) == {0: (True, 2, None)}


async def test_the_request_id_comes_from_the_request(database: Database) -> None:
    token = request_id_var.set("req-abc-123")
    try:
        async with database.begin() as conn:
            stored = await record_audit(conn, actor="a", action="x.y", subject="site:4")
            explicit = await record_audit(
                conn, actor="a", action="x.z", subject="site:4", request_id="given"
            )
    finally:
        request_id_var.reset(token)
    async with database.begin() as conn:
        outside = await record_audit(conn, actor="a", action="x.w", subject="site:4")
    assert (stored.request_id, explicit.request_id, outside.request_id) == (
        "req-abc-123",
        "given",
        None,
    )
    async with database.connect() as conn:
        found = await list_audit(conn, subject="site:4")
    assert [r["request_id"] for r in found] == [None, "given", "req-abc-123"]


async def test_a_rolled_back_record_leaves_no_trace_in_the_chain(database: Database) -> None:
    class Abort(Exception):
        pass

    async with database.begin() as conn:
        await record_audit(conn, actor="a", action="one", subject="site:3")
    with pytest.raises(Abort):
        async with database.begin() as conn:
            await record_audit(conn, actor="a", action="lost", subject="site:3")
            raise Abort
    async with database.begin() as conn:
        second = await record_audit(conn, actor="a", action="two", subject="site:3")
    assert second.seq == 2
    assert await _reports(database, site_id=3) == {3: (True, 2, None)}


async def test_queries_filter_and_page_newest_first(database: Database) -> None:
    await _write(database)
    async with database.connect() as conn:
        first = await audit_page(conn, AuditFilter(limit=2, site_id=1))
        rest = await audit_page(conn, AuditFilter(limit=2, site_id=1, after=first["next_after"]))
        window = await audit_page(
            conn,
            AuditFilter(
                limit=10,
                site_id=1,
                since=T0 + timedelta(minutes=1),
                until=T0 + timedelta(minutes=2),
            ),
        )
        platform = await audit_page(conn, AuditFilter(limit=10, platform=True))
        by_actor = await audit_page(conn, AuditFilter(limit=10, actor="person:8"))
        by_subject = await audit_page(conn, AuditFilter(limit=10, subject="site:2"))
        by_action = await audit_page(conn, AuditFilter(limit=10, action="site.created"))
    actions = [i["action"] for i in first["items"]]
    assert actions == ["intent.sealed", "site.member.role_changed"]
    assert [i["action"] for i in rest["items"]] == ["site.created"] and rest["next_after"] is None
    assert [i["action"] for i in window["items"]] == ["site.member.role_changed"]
    assert [i["action"] for i in platform["items"]] == ["admin.login", "lock.set"]
    assert [i["action"] for i in by_actor["items"]] == ["site.updated"]
    assert [i["site_id"] for i in by_subject["items"]] == [2, 2]
    assert [i["site_id"] for i in by_action["items"]] == [2, 1]
    one = first["items"][1]
    assert one["before"] == {"role": "viewer"} and one["after"] == {"role": "editor"}
    assert one["seq"] == 2 and len(one["hash"]) == 64


# ---------------------------------------------------------------- tampering


async def _tamper(database: Database, statement: object) -> None:
    async with database.begin() as conn:
        await conn.execute(statement)  # type: ignore[call-overload]


async def _row_id(database: Database, chain: int, seq: int) -> int:
    async with database.connect() as conn:
        found = await conn.scalar(
            select(audit_events.c.id).where(
                audit_events.c.chain == chain, audit_events.c.seq == seq
            )
        )
    assert found is not None
    return int(found)


async def test_edited_details_are_detected(database: Database) -> None:
    await _write(database)
    row = await _row_id(database, 1, 2)
    await _tamper(
        database, update(audit_events).where(audit_events.c.id == row).values(details={"x": 1})
    )
    assert await _reports(database, site_id=1) == {1: (False, 2, "hash_mismatch")}
    [report] = await verify(database, site_id=1)
    assert report.first_break is not None and report.first_break.seq == 2
    # Other chains are not affected.
    assert await _reports(database, site_id=2) == {2: (True, 2, None)}


async def test_edited_before_after_and_a_moved_record_are_detected(database: Database) -> None:
    await _write(database)
    row = await _row_id(database, 1, 2)
    await _tamper(
        database,
        update(audit_events).where(audit_events.c.id == row).values(state_after={"role": "owner"}),
    )
    assert (await _reports(database, site_id=1))[1][2] == "hash_mismatch"
    # Shown under another site instead: its own chain no longer holds it.
    other = await _row_id(database, 2, 2)
    await _tamper(
        database, update(audit_events).where(audit_events.c.id == other).values(site_id=1)
    )
    assert (await _reports(database, site_id=2))[2][2] == "wrong_chain"


async def test_a_deleted_row_is_detected(database: Database) -> None:
    await _write(database)
    await _tamper(
        database, delete(audit_events).where(audit_events.c.id == await _row_id(database, 1, 2))
    )
    assert await _reports(database, site_id=1) == {1: (False, 2, "sequence_gap")}


async def test_deleted_newest_rows_and_heads_are_detected(database: Database) -> None:
    await _write(database)
    await _tamper(
        database, delete(audit_events).where(audit_events.c.id == await _row_id(database, 1, 3))
    )
    assert await _reports(database, site_id=1) == {1: (False, 2, "missing_records")}
    await _tamper(database, delete(audit_heads).where(audit_heads.c.chain == 2))
    assert await _reports(database, site_id=2) == {2: (False, 2, "no_head")}
    await _tamper(
        database, update(audit_heads).where(audit_heads.c.chain == 0).values(head_hash="f" * 64)
    )
    assert await _reports(database, platform=True) == {0: (False, 2, "head_mismatch")}


async def test_a_row_slipped_past_the_head_is_detected(database: Database) -> None:
    """A forged record that links correctly but was not appended through the head."""
    await _write(database)
    async with database.connect() as conn:
        last = (
            await conn.execute(
                select(audit_events).where(audit_events.c.chain == 2, audit_events.c.seq == 2)
            )
        ).one()
    forged = append(
        ChainHead(2, last.hash), site_id=2, ts=T0, actor="x", action="forged", subject="site:2"
    )
    await _tamper(
        database,
        insert(audit_events).values(
            ts=T0,
            actor=forged.actor,
            action=forged.action,
            subject=forged.subject,
            site_id=2,
            chain=2,
            seq=forged.seq,
            prev_hash=forged.prev_hash,
            hash=forged.hash,
        ),
    )
    assert await _reports(database, site_id=2) == {2: (False, 2, "past_head")}


# ---------------------------------------------------------------- the command


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> str:
    monkeypatch.chdir(str(tmp_path))  # no stray .env
    monkeypatch.setenv("KERVAN_DATABASE_URL", database_url)
    return database_url


def test_kervan_audit_verify(cli_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    database = Database(cli_env)

    async def write() -> None:
        try:
            await _write(database)
        finally:
            await database.dispose()

    async def edit() -> None:
        try:
            async with database.begin() as conn:
                await conn.execute(
                    update(audit_events)
                    .where(audit_events.c.chain == 2, audit_events.c.seq == 1)
                    .values(actor="admin:someone-else")
                )
        finally:
            await database.dispose()

    assert cli.main(["audit", "verify"]) == 0
    assert capsys.readouterr().out == "the audit log is empty\n"
    asyncio.run(write())
    assert cli.main(["audit", "verify"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["platform", "site 1", "site 2"]
    assert all(": ok, " in line for line in lines)
    assert "site 1: ok, 3 records, head 3 " in lines[1]
    asyncio.run(edit())
    assert cli.main(["audit", "verify", "--site", "1"]) == 0
    assert cli.main(["audit", "verify", "--site", "2"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == (
        "site 2: BROKEN at seq 1 (hash_mismatch): the record's content does not match its hash"
    )
    assert cli.main(["audit", "verify"]) == 1
    assert cli.main(["audit", "verify", "--platform"]) == 0
    with pytest.raises(SystemExit):
        cli.main(["audit", "verify", "--site", "0"])
