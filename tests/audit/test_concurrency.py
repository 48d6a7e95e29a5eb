"""Concurrent writers never fork a chain: each append waits for the chain's head.

Many transactions at once, each appending several records to one of a few chains (one of them
new, so its first writers race to create the head), with yields in between so they interleave;
afterwards every chain is 1..n without gaps or forks and verifies. Run on MariaDB (row locks on
the head) and on SQLite (its single write lock)."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import select

from service.audit import record_audit
from service.audit.verify import verify
from service.db import Database
from service.db.tables.foundation import audit_events

WRITERS = 48
RECORDS_EACH = 3
#: Sites 1 and 2, the platform, and site 3 whose chain does not exist when the writers start.
SUBJECTS = ("site:1", "site:2", "ip:10.0.0.1", "site:3")


async def test_concurrent_writers_never_fork_a_chain(database_url: str) -> None:
    database = Database(database_url, pool_size=12)
    try:
        async with database.begin() as conn:
            for subject in SUBJECTS[:3]:
                await record_audit(conn, actor="setup", action="seed", subject=subject)

        async def writer(n: int) -> None:
            subject = SUBJECTS[n % len(SUBJECTS)]
            async with database.begin() as conn:
                # As a feature's transaction reads before it writes: on MariaDB this fixes the
                # snapshot, so only a locking read of the head sees the other writers' appends.
                await conn.execute(select(audit_events.c.id).limit(1))
                await asyncio.sleep(0)
                for k in range(RECORDS_EACH):
                    await record_audit(
                        conn,
                        actor=f"writer:{n}",
                        action="race",
                        subject=subject,
                        details={"writer": n, "k": k},
                    )
                    await asyncio.sleep(0)

        await asyncio.gather(*(writer(n) for n in range(WRITERS)))

        async with database.connect() as conn:
            rows = (
                await conn.execute(
                    select(audit_events.c.chain, audit_events.c.seq, audit_events.c.actor).order_by(
                        audit_events.c.chain, audit_events.c.seq
                    )
                )
            ).all()
        per_chain = Counter(row.chain for row in rows)
        each = WRITERS // len(SUBJECTS) * RECORDS_EACH
        assert per_chain == {1: each + 1, 2: each + 1, 0: each + 1, 3: each}
        for chain, count in per_chain.items():
            seqs = [row.seq for row in rows if row.chain == chain]
            assert seqs == list(range(1, count + 1)), chain
            # A transaction's records are consecutive: it held the head until it committed.
            writers = [row.actor for row in rows if row.chain == chain and row.actor != "setup"]
            runs = [writers[i : i + RECORDS_EACH] for i in range(0, len(writers), RECORDS_EACH)]
            assert all(len(set(run)) == 1 for run in runs), chain
        reports = await verify(database)
        assert [(r.chain, r.ok, r.checked) for r in reports] == [
            (0, True, each + 1),
            (1, True, each + 1),
            (2, True, each + 1),
            (3, True, each),
        ]
    finally:
        await database.dispose()
