"""One upload job per site at a time, responsible for all of the site's pending conversions.

The connection row holds the key of that job (``flush_key``). Whoever makes a row pending - the
seal, a retry, a reconnect - does so in a transaction that also calls ``ensure_flush``: it reads
``flush_key`` under the connection row's lock and, when no job is responsible, queues one in the
same transaction (the queue's transactional outbox) and records its key. The job gives the
responsibility back only with one conditional statement - "clear my key if no row of the site is
pending" (``release_flush``) - taken under the same lock, so a row made pending concurrently is
either seen by the job (which then keeps going) or finds the key cleared (and queues a new job):
a pending row always has a job, and N sealed intents cost one job and N / 2,000 requests instead
of N jobs.

Locking: on MariaDB the seal's ``SELECT ... FOR UPDATE`` reads the latest committed key and holds
the row until the seal commits; ``release_flush`` takes the same lock first, so its check runs
after any concurrent seal committed. SQLite has one writer: the seal's transaction already holds
the write lock when it reads the key, and ``release_flush``'s single ``UPDATE ... WHERE NOT
EXISTS (...)`` is atomic under that lock.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import and_, exists, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.ads.connections import ACTIVE
from service.ads.uploads import live_intent
from service.db.tables.ads import ads_connections, ads_uploads
from service.db.types import from_timestamp
from service.queue.base import JobQueue
from service.tracking.scope import SiteScope, where_site

C = ads_connections
U = ads_uploads
UPLOAD_QUEUE = "ads.upload"
#: Attempts of one upload job. Expected waits (a retry in 6 hours, an open breaker) defer the
#: job without using one; only a crash or a timeout of its worker does.
JOB_ATTEMPTS = 10
#: A newly pending row may wait this long for the responsible job to wake.
SOON = 60.0


def new_job_key(site_id: int) -> str:
    # Random: a key reused within the queue's retention would be taken for a duplicate.
    return f"ads-upload:{site_id}:{secrets.token_hex(8)}"


async def ensure_flush(
    conn: AsyncConnection,
    scope: SiteScope,
    queue: JobQueue,
    *,
    now: float,
    delay: float = 0.0,
) -> str | None:
    """Make sure a job is responsible for the site's pending rows and will look at them soon;
    returns the key of a job queued now (None: one already is, or the site has no active
    connection). A responsible job asleep until a later retry (6 hours after a
    ``TOO_RECENT_EVENT``) is superseded by a new one, so a new sale never waits behind it."""
    query = select(C.c.status, C.c.flush_key, C.c.flush_wakes_at).where(where_site(C, scope))
    if conn.dialect.name != "sqlite":
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None or row.status != ACTIVE:
        return None
    wakes = row.flush_wakes_at
    if row.flush_key is not None and (wakes is None or wakes.timestamp() <= now + SOON + delay):
        return None
    key = new_job_key(scope.site_id)
    await queue.enqueue(
        UPLOAD_QUEUE,
        {"site_id": scope.site_id},
        key=key,
        delay=max(0.0, delay),
        max_attempts=JOB_ATTEMPTS,
        conn=conn,
    )
    wakes_at = from_timestamp(now + delay) if delay > 0 else None
    await conn.execute(
        update(C).where(where_site(C, scope)).values(flush_key=key, flush_wakes_at=wakes_at)
    )
    return key


async def sleeping(conn: AsyncConnection, scope: SiteScope, key: str, wakes_at: datetime) -> None:
    """The job ``key`` keeps the site's rows and sleeps until ``wakes_at``."""
    await conn.execute(
        update(C).where(where_site(C, scope), C.c.flush_key == key).values(flush_wakes_at=wakes_at)
    )


async def release_flush(conn: AsyncConnection, scope: SiteScope, key: str) -> bool:
    """The job ``key`` gives the responsibility back if no row of the site is pending; True
    when it did (the job is then done), False when rows wait (it keeps them)."""
    if conn.dialect.name != "sqlite":
        # Waits for a concurrent seal to commit: the check below then sees its row.
        await conn.execute(select(C.c.flush_key).where(where_site(C, scope)).with_for_update())
    # A deleted intent's row waits for its restore (which calls ``ensure_flush``), not a job.
    pending = exists().where(where_site(U, scope), U.c.status == "pending", live_intent(scope))
    result = await conn.execute(
        update(C)
        .where(and_(where_site(C, scope), C.c.flush_key == key, ~pending))
        .values(flush_key=None, flush_wakes_at=None)
    )
    return bool(result.rowcount == 1)


async def drop_flush(conn: AsyncConnection, scope: SiteScope, key: str) -> None:
    """The job ``key`` stops whatever is pending (uploads paused: a reconnect queues a new one)."""
    await conn.execute(
        update(C)
        .where(where_site(C, scope), C.c.flush_key == key)
        .values(flush_key=None, flush_wakes_at=None)
    )


async def responsible(conn: AsyncConnection, scope: SiteScope) -> str | None:
    return (
        await conn.execute(select(C.c.flush_key).where(where_site(C, scope)))
    ).scalar_one_or_none()
