"""Taking a batch of a site's due conversions, and writing back what became of each.

A batch is claimed under a lease: a random token and a time limit longer than the upload job
may run. Outcomes are written only where the row still carries the token, so a worker that
lost its lease (it stalled past the limit and another worker took the rows) cannot overwrite
what its successor recorded. One job is responsible for a site at a time
(``service/ads/flush.py``); the claim still never hands a row to two workers, whatever happens
to that job (a worker stalled past its lease while the queue gave the job to another).

Claiming differs by dialect, as in the queue's SQL outbox (``service/queue/sql.py``):

- MariaDB: in one transaction, ``SELECT ... FOR UPDATE SKIP LOCKED`` of the site's longest-due
  rows along ``ix_ads_uploads_due``, and an ``UPDATE`` that leases them. Concurrent workers
  skip each other's locked rows instead of waiting for them.
- SQLite has a single writer: one ``UPDATE ... WHERE intent_id IN (SELECT ... LIMIT n)
  RETURNING`` chooses and leases the rows in one statement under the database's write lock, so
  two processes can never lease the same row (the second one's subquery sees the first one's
  lease). ``FOR UPDATE`` does not exist there and is not needed.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.ads.uploads import PENDING, UPLOADED, live_intent
from service.db import Database
from service.db.conflicts import retry_lock_conflicts
from service.db.tables.ads import ads_uploads
from service.db.types import from_timestamp
from service.tracking.scope import SiteScope, where_site

U = ads_uploads
CHUNK = 500
_COLUMNS = (
    U.c.intent_id,
    U.c.order_id,
    U.c.click_kind,
    U.c.click_id,
    U.c.consent_subject,
    U.c.conversion_at,
    U.c.value,
    U.c.currency,
    U.c.attempts,
)


@dataclass(frozen=True, slots=True)
class Claimed:
    intent_id: int
    order_id: str
    click_kind: str | None
    click_id: str | None
    consent_subject: str | None
    conversion_at: datetime
    value: Decimal
    currency: str
    attempts: int  # including this one


@dataclass(frozen=True, slots=True)
class Batch:
    token: str
    rows: list[Claimed]


def _claimed(row: Any) -> Claimed:
    return Claimed(
        intent_id=int(row.intent_id),
        order_id=row.order_id,
        click_kind=row.click_kind,
        click_id=row.click_id,
        consent_subject=row.consent_subject,
        conversion_at=row.conversion_at,
        value=Decimal(row.value),
        currency=row.currency,
        attempts=int(row.attempts),
    )


async def claim_batch(
    db: Database,
    scope: SiteScope,
    *,
    limit: int,
    lease_seconds: float,
    now: float,
) -> Batch:
    """Lease up to ``limit`` due rows of the site, the longest due first; each leased row
    counts one attempt."""
    token = secrets.token_hex(16)
    at = from_timestamp(now)
    due = and_(
        where_site(U, scope),
        U.c.status == PENDING,
        U.c.next_attempt_at <= at,
        or_(U.c.lease_until.is_(None), U.c.lease_until <= at),
        live_intent(scope),
    )
    leased = {
        "lease_token": token,
        "lease_until": from_timestamp(now + lease_seconds),
        "attempts": U.c.attempts + 1,
        "updated_at": at,
    }
    if db.dialect == "sqlite":
        chosen = (
            select(U.c.intent_id)
            .where(due)
            .order_by(U.c.next_attempt_at, U.c.intent_id)
            .limit(limit)
            .scalar_subquery()
        )
        async with db.begin() as conn:
            result = await conn.execute(
                update(U)
                .where(where_site(U, scope), U.c.intent_id.in_(chosen))
                .values(leased)
                .returning(*_COLUMNS)
            )
            rows = [_claimed(row) for row in result.all()]
        return Batch(token, sorted(rows, key=lambda r: r.intent_id))

    async def lease() -> list[Claimed]:
        async with db.begin() as conn:
            return await _lease_locked(conn, due, leased, scope, token, limit)

    # Two claimers' gap locks can still deadlock on InnoDB despite SKIP LOCKED: the victim's
    # transaction rolled back whole, so it simply claims again.
    rows = await retry_lock_conflicts(lease)
    return Batch(token, sorted(rows, key=lambda r: r.intent_id))


async def _lease_locked(
    conn: AsyncConnection,
    due: Any,
    leased: dict[str, Any],
    scope: SiteScope,
    token: str,
    limit: int,
) -> list[Claimed]:
    """MariaDB: lock the due rows no other claimer holds, lease them, read them back."""
    ids = list(
        (
            await conn.execute(
                select(U.c.intent_id)
                .where(due)
                .order_by(U.c.next_attempt_at, U.c.intent_id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).scalars()
    )
    if not ids:
        return []
    for start in range(0, len(ids), CHUNK):
        await conn.execute(
            update(U)
            .where(where_site(U, scope), U.c.intent_id.in_(ids[start : start + CHUNK]))
            .values(leased)
        )
    result = await conn.execute(
        select(*_COLUMNS).where(where_site(U, scope), U.c.lease_token == token)
    )
    return [_claimed(row) for row in result.all()]


async def next_due(conn: AsyncConnection, scope: SiteScope) -> float | None:
    """When the site's next pending row may be claimed (its retry time, or the end of the lease
    a batch holds it under); None when none is pending."""
    later = case(
        (U.c.lease_until > U.c.next_attempt_at, U.c.lease_until), else_=U.c.next_attempt_at
    )
    found = (
        await conn.execute(
            select(func.min(later)).where(
                where_site(U, scope), U.c.status == PENDING, live_intent(scope)
            )
        )
    ).scalar_one_or_none()
    if found is None:
        return None
    if isinstance(found, str):  # SQLite returns MIN() over a CASE as text
        found = datetime.fromisoformat(found)
    if found.tzinfo is None:
        found = found.replace(tzinfo=UTC)
    return float(found.timestamp())


@dataclass(frozen=True, slots=True)
class Settled:
    """What became of one leased row."""

    intent_id: int
    status: str  # pending (a retry), uploaded, failed, not_eligible
    reason: str | None = None
    message: str | None = None
    next_at: datetime | None = None  # pending: when it is due again
    #: The attempt the claim counted is given back: the row was not sent (consent lapsed), or
    #: the connection itself was refused and is paused - the row is not to blame.
    give_back: bool = False


async def settle(
    conn: AsyncConnection,
    scope: SiteScope,
    token: str,
    items: list[Settled],
    *,
    request_id: str | None,
    now: datetime,
) -> int:
    """Write the outcomes and end the lease; returns how many rows still held it. Rows with
    the same outcome share one statement (a batch is up to 2,000 rows)."""
    groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for item in items:
        key = (item.status, item.reason, item.message, item.next_at, item.give_back)
        groups[key].append(item.intent_id)
    changed = 0
    for (status, reason, message, next_at, give_back), ids in groups.items():
        values: dict[str, Any] = {
            "status": status,
            "reason": None if reason is None else reason[:80],
            "message": None if message is None else message[:255],
            "lease_token": None,
            "lease_until": None,
            "updated_at": now,
        }
        if request_id is not None:
            values["request_id"] = request_id[:64]
        if status == UPLOADED:
            values["uploaded_at"] = now
        if status == PENDING and next_at is not None:
            values["next_attempt_at"] = next_at
        if give_back:
            values["attempts"] = U.c.attempts - 1
        for start in range(0, len(ids), CHUNK):
            result = await conn.execute(
                update(U)
                .where(
                    where_site(U, scope),
                    U.c.intent_id.in_(ids[start : start + CHUNK]),
                    U.c.lease_token == token,
                )
                .values(values)
            )
            changed += int(result.rowcount or 0)
    return changed
