"""Writing the audit log: one record appended to its chain in the caller's transaction.

A record goes to the chain of its site: ``site_id`` when given, else the site a subject
``site:<id>`` names, else the platform chain. Appending locks the chain's head row first (a row
lock on MariaDB, held to the end of the transaction; SQLite's single write lock), so two
transactions of one chain queue instead of both linking to the same predecessor; the unique
``(chain, seq)`` key refuses a fork should anything slip past. Writers of different sites
never wait for each other.

There is no update or delete: kervan only inserts. Tampering with stored rows is detected by
``service/audit/verify.py``: an edited row no longer matches its hash, a removed row leaves a
gap in ``seq``, removed newest rows leave the log short of the head.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.audit.chain import GENESIS, AuditRecord, ChainHead, append, chain_of, site_of_subject
from service.db.tables.foundation import audit_events, audit_heads
from service.db.types import utcnow
from service.db.upsert import upsert_stmt
from service.logging import request_id_var


async def record_audit(
    conn: AsyncConnection,
    *,
    actor: str,
    action: str,
    subject: str,
    details: dict[str, Any] | None = None,
    ts: datetime | None = None,
    site_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> AuditRecord:
    """Append a record: ``before``/``after`` hold the changed fields' old and new values (None
    for a creation's before or a removal's after); ``request_id`` defaults to the current
    request's (``service.logging.request_id_var``). Returns the stored, hashed record."""
    site = site_id if site_id is not None else site_of_subject(subject)
    chain = chain_of(site)
    at = ts or utcnow()
    head = await _lock_head(conn, chain)
    record = append(
        head,
        site_id=site,
        ts=at,
        actor=actor,
        action=action,
        subject=subject,
        request_id=request_id if request_id is not None else request_id_var.get(),
        details=details,
        before=before,
        after=after,
    )
    await conn.execute(
        insert(audit_events).values(
            ts=at,
            actor=record.actor,
            action=record.action,
            subject=record.subject,
            details=record.details,
            site_id=record.site_id,
            request_id=record.request_id,
            state_before=record.before,
            state_after=record.after,
            chain=record.chain,
            seq=record.seq,
            prev_hash=record.prev_hash,
            hash=record.hash,
        )
    )
    await conn.execute(
        update(audit_heads)
        .where(audit_heads.c.chain == chain)
        .values(seq=record.seq, head_hash=record.hash, updated_at=at)
    )
    return record


async def _lock_head(conn: AsyncConnection, chain: int) -> ChainHead:
    # Insert-or-ignore first, so the writers of a new chain queue on one row lock instead of
    # each reading "no head yet"; on SQLite this write takes the database's write lock.
    await conn.execute(
        upsert_stmt(
            "sqlite" if conn.dialect.name == "sqlite" else "mysql",
            audit_heads,
            {"chain": chain, "seq": GENESIS.seq, "head_hash": GENESIS.hash, "updated_at": None},
            index_elements=["chain"],
        )
    )
    query = select(audit_heads.c.seq, audit_heads.c.head_hash).where(audit_heads.c.chain == chain)
    if conn.dialect.name != "sqlite":
        # A locking read: it sees the latest committed head, not the transaction's snapshot.
        query = query.with_for_update()
    row = (await conn.execute(query)).one()
    return ChainHead(int(row.seq), str(row.head_hash))


async def list_audit(
    conn: AsyncConnection,
    *,
    subject: str | None = None,
    action: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The newest records, optionally of one subject or action (every column)."""
    query = select(audit_events).order_by(audit_events.c.id.desc()).limit(limit)
    if subject is not None:
        query = query.where(audit_events.c.subject == subject)
    if action is not None:
        query = query.where(audit_events.c.action == action)
    rows = (await conn.execute(query)).mappings().all()
    return [dict(r) for r in rows]
