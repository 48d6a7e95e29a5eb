"""At the seal: the intent's upload state, and (when none is responsible yet) the site's upload
job, in the seal's own transaction.

``service.tracking.lifecycle.seal`` calls ``on_sealed(conn, scope, intent)`` inside the seal's
transaction. The upload row is written on that connection, and ``ensure_flush`` queues the
site's upload job there too when no job is responsible for the site's pending rows yet (the
queue's transactional outbox; on Redis Streams the job waits in the SQL outbox and is relayed
after the commit): a job exists exactly when the seal commits, and a rolled-back seal leaves
neither row nor job. See ``service/ads/flush.py`` for why one job per site is enough.

The hook has no runtime in hand, only the connection: the ads feature installs the runtime's
queue for its database engine (``install``), and ``on_sealed`` finds it by the connection's
engine - one per runtime, so several apps in one test process stay apart.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection

from core.errors import BackendUnavailable
from service.ads.connections import get_connection
from service.ads.eligibility import (
    MESSAGES,
    NOT_CONNECTED,
    click_of,
    session_subject,
    subject_reason,
)
from service.ads.flush import ensure_flush
from service.ads.uploads import (
    CONNECTION_PAUSED,
    NOT_ELIGIBLE,
    PAUSED_MESSAGE,
    PENDING,
    get_upload,
    insert_upload,
)
from service.ads.wire import order_id
from service.queue.base import JobQueue
from service.tracking.scope import SiteScope

QueueSource = Callable[[], JobQueue | None]
_QUEUES: weakref.WeakKeyDictionary[Engine, QueueSource] = weakref.WeakKeyDictionary()


class SealedIntent(Protocol):
    @property
    def row(self) -> Any: ...


def install(engine: Engine, queue_source: QueueSource) -> None:
    """Route seals made on ``engine``'s connections to this runtime's queue."""
    _QUEUES[engine] = queue_source


async def record_seal(
    conn: AsyncConnection, scope: SiteScope, intent: Any, *, queue: JobQueue
) -> str:
    """Write the sealed intent's upload state (``pending`` or ``not_eligible`` with the reason)
    and, when pending, make sure the site's upload job exists; returns the status. Runs once per
    intent: a row already there is left as it is."""
    intent_id = int(intent.id)
    existing = await get_upload(conn, scope, intent_id)
    if existing is not None:
        return str(existing.status)
    sealed_at: datetime = intent.sealed_at
    kind, click, reason = click_of(intent)
    subject = await session_subject(conn, scope, intent.session_id)
    if reason is None:
        reason = await subject_reason(conn, subject, sealed_at.timestamp())
    connection = await get_connection(conn, scope) if reason is None else None
    if reason is None and connection is None:
        reason = NOT_CONNECTED
    status = PENDING if reason is None else NOT_ELIGIBLE
    # A paused connection: the row waits (the reconnect queues it), and says so.
    waits = CONNECTION_PAUSED if connection is not None and connection.paused else None
    await insert_upload(
        conn,
        scope,
        intent_id=intent_id,
        status=status,
        reason=reason or waits,
        message=MESSAGES.get(reason) if reason else (PAUSED_MESSAGE if waits else None),
        order_id=order_id(scope.site_id, intent_id),
        click_kind=kind,
        click_id=click,
        consent_subject=subject,
        conversion_at=sealed_at,
        value=intent.amount,
        currency=intent.currency,
        attempts=0,
        next_attempt_at=sealed_at,
        created_at=sealed_at,
        updated_at=sealed_at,
    )
    if status == PENDING:
        await ensure_flush(conn, scope, queue, now=sealed_at.timestamp())
    return status


async def on_sealed(conn: AsyncConnection, scope: SiteScope, intent: SealedIntent) -> None:
    """The seal's hook (``service.tracking.lifecycle.on_sealed`` calls this)."""
    source = _QUEUES.get(conn.sync_engine)
    if source is None:
        raise LookupError("the ads feature is not set up for this database")
    queue = source()
    if queue is None:
        raise BackendUnavailable("queue", "the outbound queue is not configured")
    await record_seal(conn, scope, intent.row, queue=queue)
