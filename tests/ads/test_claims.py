"""Batches are claimed under a lease (``FOR UPDATE SKIP LOCKED`` on MariaDB, one ``UPDATE ...
RETURNING`` on SQLite): concurrent claims never share a row, a live lease is respected, an
expired one is taken over, and the loser's late outcome is fenced off."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import insert, select

from core.errors import StorageError
from service.ads import claims
from service.ads.claims import Settled, claim_batch, next_due, settle
from service.db import Database
from service.db.tables.ads import ads_uploads
from service.tracking.scope import SiteScope

NOW = 1_790_000_000.0
SITE = SiteScope(site_id=7, role="admin", actor="test")
OTHER = SiteScope(site_id=8, role="admin", actor="test")


async def _rows(db: Database, scope: SiteScope, count: int, *, due_in: float = -60.0) -> None:
    at = datetime.fromtimestamp(NOW, UTC)
    async with db.begin() as conn:
        await conn.execute(
            insert(ads_uploads),
            [
                {
                    "site_id": scope.site_id,
                    "intent_id": scope.site_id * 1000 + n,
                    "status": "pending",
                    "order_id": f"kervan-{scope.site_id}-{n}",
                    "click_kind": "gclid",
                    "click_id": f"g-{n}",
                    "consent_subject": "s",
                    "conversion_at": at,
                    "value": Decimal("1.00"),
                    "currency": "EUR",
                    "attempts": 0,
                    "next_attempt_at": at + timedelta(seconds=due_in),
                    "created_at": at,
                    "updated_at": at,
                }
                for n in range(count)
            ],
        )


async def test_concurrent_claims_never_share_a_row(database: Database) -> None:
    await _rows(database, SITE, 50)
    await _rows(database, OTHER, 5)
    claims = await asyncio.gather(
        *(claim_batch(database, SITE, limit=20, lease_seconds=30, now=NOW) for _ in range(4))
    )
    taken = [row.intent_id for batch in claims for row in batch.rows]
    # Never one row to two claims. (SKIP LOCKED may leave a concurrent claim with less than it
    # could take, when InnoDB locked more of the index than the rows it returned: the rest is
    # claimed next.)
    assert len(taken) == len(set(taken)) and taken
    assert all(len(batch.rows) <= 20 for batch in claims)
    while True:
        more = await claim_batch(database, SITE, limit=20, lease_seconds=30, now=NOW)
        if not more.rows:
            break
        taken += [row.intent_id for row in more.rows]
    assert len(taken) == len(set(taken)) == 50  # every row once, none twice
    assert all(7000 <= i < 7050 for i in taken)  # never another site's
    assert all(row.attempts == 1 for batch in claims for row in batch.rows)
    # Leased: nothing more to claim until the lease runs out.
    again = await claim_batch(database, SITE, limit=100, lease_seconds=30, now=NOW + 29)
    assert again.rows == []
    async with database.connect() as conn:
        assert await next_due(conn, SITE) == NOW + 30


async def test_an_expired_lease_is_taken_over_and_the_late_outcome_is_fenced(
    database: Database,
) -> None:
    await _rows(database, SITE, 3)
    first = await claim_batch(database, SITE, limit=10, lease_seconds=30, now=NOW)
    assert len(first.rows) == 3
    second = await claim_batch(database, SITE, limit=10, lease_seconds=30, now=NOW + 31)
    assert [r.intent_id for r in second.rows] == [r.intent_id for r in first.rows]
    assert {r.attempts for r in second.rows} == {2}
    at = datetime.fromtimestamp(NOW + 40, UTC)
    async with database.begin() as conn:
        late = await settle(
            conn,
            SITE,
            first.token,
            [Settled(r.intent_id, "uploaded") for r in first.rows],
            request_id="late",
            now=at,
        )
        fresh = await settle(
            conn,
            SITE,
            second.token,
            [Settled(r.intent_id, "failed", "EXPIRED_EVENT", "m") for r in second.rows],
            request_id="fresh",
            now=at,
        )
    assert (late, fresh) == (0, 3)
    async with database.connect() as conn:
        rows = (await conn.execute(select(ads_uploads).where(ads_uploads.c.site_id == 7))).all()
    assert {(r.status, r.reason, r.request_id, r.lease_token) for r in rows} == {
        ("failed", "EXPIRED_EVENT", "fresh", None)
    }


async def test_only_due_rows_are_claimed_and_a_give_back_returns_the_attempt(
    database: Database,
) -> None:
    await _rows(database, SITE, 2)
    await _rows(database, OTHER, 2, due_in=3600)
    assert (await claim_batch(database, OTHER, limit=10, lease_seconds=30, now=NOW)).rows == []
    batch = await claim_batch(database, SITE, limit=10, lease_seconds=30, now=NOW)
    async with database.begin() as conn:
        await settle(
            conn,
            SITE,
            batch.token,
            [
                Settled(r.intent_id, "pending", "connection_paused", give_back=True)
                for r in batch.rows
            ],
            request_id=None,
            now=datetime.fromtimestamp(NOW, UTC),
        )
    again = await claim_batch(database, SITE, limit=10, lease_seconds=30, now=NOW)
    assert {r.attempts for r in again.rows} == {1}  # the first claim's attempt was given back


async def test_a_deadlock_victim_claims_again(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """InnoDB may still pick one of two claimers as a deadlock victim (gap locks): its
    transaction rolled back whole, so it claims again instead of failing the upload job."""
    if database.dialect == "sqlite":
        pytest.skip("SQLite claims with one UPDATE under its write lock: no deadlock victims")
    await _rows(database, SITE, 3)
    real = claims._lease_locked
    calls: list[int] = []

    async def deadlocked_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            await real(*args, **kwargs)  # the work is done, then the server aborts it
            raise StorageError("database error: OperationalError: (1213, 'Deadlock found')")
        return await real(*args, **kwargs)

    monkeypatch.setattr(claims, "_lease_locked", deadlocked_once)
    batch = await claim_batch(database, SITE, limit=10, lease_seconds=30, now=NOW)
    assert len(calls) == 2
    assert sorted(row.intent_id for row in batch.rows) == [7000, 7001, 7002]
    # The aborted attempt's lease was rolled back: each row counts the one attempt.
    assert {row.attempts for row in batch.rows} == {1}
