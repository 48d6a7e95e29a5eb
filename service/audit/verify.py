"""Verifying the audit log: walk a chain in ``seq`` order and report its first broken link.

Records are read in keyset pages of ``PAGE`` (constant memory for any chain length) on one
read connection. What is reported (``core.audit.chain.ChainBreak``): an edited record
(``hash_mismatch``), a removed one (``sequence_gap`` at the missing seq), a record relinked or
moved from another chain (``prev_hash_mismatch``, ``wrong_chain``), removed newest records
(``missing_records`` against the head), and a removed or rewritten head.

The chain can only prove itself against its own head: whoever can rewrite every row *and*
the head can forge a consistent history. Keeping the head hashes this reports somewhere else
(a ticket, the operator's log) anchors them.
"""

from __future__ import annotations

from sqlalchemy import func, select, union
from sqlalchemy.ext.asyncio import AsyncConnection

from core.audit.chain import ChainHead, ChainReport, ChainWalker, chain_of, record_from_row
from service.db import Database
from service.db.tables.foundation import audit_events, audit_heads

PAGE = 1000


async def verify_chain(conn: AsyncConnection, chain: int) -> ChainReport:
    # The head first, then the records up to it: on SQLite every read is a snapshot of its
    # own, and a record appended meanwhile must not look like one missing from the head.
    head = await _head(conn, chain)
    walker = ChainWalker(chain)
    last_seq = 0
    while not walker.broken:
        query = (
            select(audit_events)
            .where(audit_events.c.chain == chain, audit_events.c.seq > last_seq)
            .order_by(audit_events.c.seq)
            .limit(PAGE)
        )
        if head is not None:
            query = query.where(audit_events.c.seq <= head.seq)
        rows = (await conn.execute(query)).mappings().all()
        for row in rows:
            if not walker.feed(record_from_row(row)):
                break
        if len(rows) < PAGE:
            break
        last_seq = int(rows[-1]["seq"])
    report = walker.finish(head)
    if not report.ok or head is None:
        return report
    beyond = await conn.scalar(
        select(func.max(audit_events.c.seq)).where(
            audit_events.c.chain == chain, audit_events.c.seq > head.seq
        )
    )
    if beyond is None:
        return report
    # Appended since the head was read, or put there without moving the head?
    now = await _head(conn, chain)
    if now is None or int(beyond) > now.seq:
        return walker.past_head(int(beyond), now or head)
    return report


async def _head(conn: AsyncConnection, chain: int) -> ChainHead | None:
    query = select(audit_heads.c.seq, audit_heads.c.head_hash).where(audit_heads.c.chain == chain)
    row = (await conn.execute(query)).first()
    return None if row is None else ChainHead(int(row.seq), str(row.head_hash))


async def chains(conn: AsyncConnection) -> list[int]:
    """Every chain that has a head or a record (one without the other is a break too)."""
    query = union(select(audit_heads.c.chain), select(audit_events.c.chain).distinct())
    return sorted(int(value) for value in (await conn.execute(query)).scalars())


async def verify(
    db: Database, *, site_id: int | None = None, platform: bool = False
) -> list[ChainReport]:
    """Reports of the site's chain, of the platform chain, or (neither given) of every chain."""
    async with db.connect() as conn:
        if site_id is not None or platform:
            wanted = [chain_of(site_id)]
        else:
            wanted = await chains(conn)
        return [await verify_chain(conn, chain) for chain in wanted]
