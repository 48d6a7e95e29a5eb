"""The upload state of sealed intents: written at the seal, read by owners, queued again.

Statuses: ``pending`` (waiting for a batch, or for a retry at ``next_attempt_at``; ``reason``
then says what it waits for), ``uploaded``, ``failed`` (for good, ``reason`` is Google's error
code or ``retries_exhausted``) and ``not_eligible`` (never sent, ``reason`` says why).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.ads.eligibility import NOT_CONNECTED
from service.db.tables.ads import ads_attempts, ads_uploads
from service.db.tables.tracking import track_intents
from service.tracking.scope import SiteScope, site_values, where_site

U = ads_uploads
A = ads_attempts
PENDING = "pending"
UPLOADED = "uploaded"
FAILED = "failed"
NOT_ELIGIBLE = "not_eligible"
STATUSES = (PENDING, UPLOADED, FAILED, NOT_ELIGIBLE)
#: What a pending row waits for when its connection is paused (the connection says why).
CONNECTION_PAUSED = "connection_paused"
PAUSED_MESSAGE = "Uploads are paused until the site's owner connects Google Ads again."
RETRIES_EXHAUSTED = "retries_exhausted"
#: Shown for an intent that has no upload state (it was never sealed).
NOT_SEALED = "not_sealed"


def live_intent(scope: SiteScope) -> ColumnElement[bool]:
    """The row's intent is not in the trash (``service/tracking/trash.py``): a deleted intent's
    conversion is neither claimed nor waited for; it stays pending for a restore (which makes
    sure a job takes it) or the purge (which removes it). The site's deleted intents are a
    short range of ``ix_track_intents_site_deleted``, read once per statement."""
    deleted = select(track_intents.c.id).where(
        where_site(track_intents, scope), track_intents.c.deleted_at.is_not(None)
    )
    return U.c.intent_id.not_in(deleted)


async def insert_upload(conn: AsyncConnection, scope: SiteScope, **values: Any) -> None:
    await conn.execute(insert(U).values(site_values(scope, **values)))


async def get_upload(conn: AsyncConnection, scope: SiteScope, intent_id: int) -> Any:
    query = select(U).where(where_site(U, scope), U.c.intent_id == intent_id)
    return (await conn.execute(query)).first()


def upload_view(row: Any) -> dict[str, Any]:
    return {
        "intent_id": int(row.intent_id),
        "status": row.status,
        "reason": row.reason,
        "message": row.message,
        "order_id": row.order_id,
        "click_kind": row.click_kind,
        "conversion_at": row.conversion_at,
        "value": f"{row.value:.2f}",
        "currency": row.currency,
        "attempts": int(row.attempts),
        "next_attempt_at": row.next_attempt_at if row.status == PENDING else None,
        "uploaded_at": row.uploaded_at,
        "request_id": row.request_id,
        "updated_at": row.updated_at,
    }


def unsealed_view(intent_id: int) -> dict[str, Any]:
    return {
        "intent_id": intent_id,
        "status": "none",
        "reason": NOT_SEALED,
        "message": "The intent is not sealed as a sale: nothing to upload.",
        "order_id": None,
        "click_kind": None,
        "conversion_at": None,
        "value": None,
        "currency": None,
        "attempts": 0,
        "next_attempt_at": None,
        "uploaded_at": None,
        "request_id": None,
        "updated_at": None,
    }


async def list_uploads(
    conn: AsyncConnection,
    scope: SiteScope,
    *,
    status: str | None,
    reason: str | None,
    before: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Newest intents first, ``before`` an intent id (cursor)."""
    conditions = [where_site(U, scope), live_intent(scope)]
    if status is not None:
        conditions.append(U.c.status == status)
    if reason is not None:
        conditions.append(U.c.reason == reason)
    if before is not None:
        conditions.append(U.c.intent_id < before)
    query = select(U).where(and_(*conditions)).order_by(U.c.intent_id.desc()).limit(limit)
    return [upload_view(row) for row in await conn.execute(query)]


async def summary(conn: AsyncConnection, scope: SiteScope) -> dict[str, Any]:
    """Counts by status, and the failed, not-eligible and waiting ones by reason."""
    query = (
        select(U.c.status, U.c.reason, func.count())
        .where(where_site(U, scope), live_intent(scope))
        .group_by(U.c.status, U.c.reason)
    )
    counts = dict.fromkeys(STATUSES, 0)
    by_reason: dict[str, dict[str, int]] = {FAILED: {}, NOT_ELIGIBLE: {}, PENDING: {}}
    for status, reason, count in await conn.execute(query):
        counts[status] = counts.get(status, 0) + int(count)
        if status in by_reason and reason:
            by_reason[status][reason] = by_reason[status].get(reason, 0) + int(count)
    return {
        **counts,
        "total": sum(counts.values()),
        "failed_by_reason": by_reason[FAILED],
        "not_eligible_by_reason": by_reason[NOT_ELIGIBLE],
        "pending_by_reason": by_reason[PENDING],
    }


async def attempts_of(
    conn: AsyncConnection, scope: SiteScope, intent_id: int, *, limit: int = 50
) -> list[dict[str, Any]]:
    """The ledger of one intent's upload (its row outcomes), newest first."""
    query = (
        select(A)
        .where(where_site(A, scope), A.c.intent_id == intent_id)
        .order_by(A.c.id.desc())
        .limit(limit)
    )
    return [
        {
            "attempt": row.attempt,
            "at": row.at,
            "outcome": row.outcome,
            "error_code": row.error_code,
            "request_id": row.request_id,
            "http_status": row.http_status,
            "latency_ms": row.latency_ms,
        }
        for row in await conn.execute(query)
    ]


async def reopen_not_connected(conn: AsyncConnection, scope: SiteScope, *, now: datetime) -> int:
    """After a connect: the sealed intents that were not eligible only for want of a connection
    become pending; returns how many."""
    result = await conn.execute(
        update(U)
        .where(where_site(U, scope), U.c.status == NOT_ELIGIBLE, U.c.reason == NOT_CONNECTED)
        .values(status=PENDING, reason=None, message=None, next_attempt_at=now, updated_at=now)
    )
    return int(result.rowcount or 0)


async def pending_count(conn: AsyncConnection, scope: SiteScope) -> int:
    query = select(func.count()).where(where_site(U, scope), U.c.status == PENDING)
    return int((await conn.execute(query)).scalar_one())
