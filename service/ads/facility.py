"""What a site's people do with Google Ads: connect and disconnect (owners), read the upload
states and the summary (members), retry a failed upload once its cause is fixed (owners).

Every operation works in the caller's transaction and scope: an id of another site names no
row (404). Changes to the connection are audited (``ads.connected``, ``ads.disconnected``,
``ads.upload_retried``), never with the token.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.clock import Clock
from core.errors import BackendUnavailable, NotFound, ValidationFailed
from core.jobs import Job
from service.ads import wire
from service.ads.connections import (
    Connection,
    connection_view,
    delete_connection,
    get_connection,
    save_connection,
)
from service.ads.crypto import TokenCipher
from service.ads.eligibility import (
    MESSAGES,
    NOT_CONNECTED,
    click_of,
    session_subject,
    subject_reason,
)
from service.ads.flush import drop_flush, ensure_flush
from service.ads.schemas import RULE_FIRST_TOKEN
from service.ads.settings import AdsSettings
from service.ads.uploads import (
    FAILED,
    NOT_ELIGIBLE,
    PENDING,
    attempts_of,
    get_upload,
    pending_count,
    reopen_not_connected,
    summary,
    unsealed_view,
    upload_view,
)
from service.audit import record_audit
from service.db import Database
from service.db.tables.ads import ads_uploads
from service.db.tables.tracking import track_intents
from service.db.types import from_timestamp
from service.errors import ApiError
from service.queue.base import JobQueue
from service.tracking.access import require_manage
from service.tracking.scope import SiteScope, where_site

U = ads_uploads
RETRYABLE = (FAILED, NOT_ELIGIBLE)
#: A dead upload job's successor starts this much later.
DEAD_JOB_PAUSE = 300.0


def _audit_view(connection: Connection | None) -> dict[str, Any] | None:
    if connection is None:
        return None
    return {
        "customer_id": connection.customer_id,
        "conversion_action": connection.conversion_action,
        "login_customer_id": connection.login_customer_id,
        "status": connection.status,
        "status_reason": connection.status_reason,
    }


class AdsFacility:
    def __init__(
        self,
        settings: AdsSettings,
        db: Database,
        clock: Clock,
        cipher: TokenCipher | None,
        queue_source: Callable[[], JobQueue | None],
    ) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.cipher = cipher
        self._queue_source = queue_source

    # --- configuration -------------------------------------------------------------------
    def missing_settings(self) -> list[str]:
        s = self.settings
        wanted = {
            "KERVAN_ADS_TOKEN_KEY": self.cipher is not None,
            "KERVAN_ADS_DEVELOPER_TOKEN": s.ads_developer_token is not None,
            "KERVAN_ADS_OAUTH_CLIENT_ID": s.ads_oauth_client_id is not None,
            "KERVAN_ADS_OAUTH_CLIENT_SECRET": s.ads_oauth_client_secret is not None,
        }
        return [name for name, present in wanted.items() if not present]

    def _queue(self) -> JobQueue:
        queue = self._queue_source()
        if queue is None:
            raise BackendUnavailable("queue", "the outbound queue is not configured")
        return queue

    def _now(self) -> datetime:
        return from_timestamp(self.clock.now())

    # --- the connection ------------------------------------------------------------------
    async def connection(self, conn: AsyncConnection, scope: SiteScope) -> dict[str, Any]:
        return connection_view(await get_connection(conn, scope))

    async def connect(
        self,
        conn: AsyncConnection,
        scope: SiteScope,
        *,
        customer_id: str,
        conversion_action: str,
        login_customer_id: str | None,
        refresh_token: str | None,
    ) -> dict[str, Any]:
        """Connect, or reconnect (resuming paused uploads, and queueing the sealed intents
        that waited only for a connection)."""
        require_manage(scope)
        missing = self.missing_settings()
        if missing:
            raise ApiError(
                409,
                "ads_not_configured",
                "Google Ads uploads are not configured on this server: nothing was stored",
                {"missing": missing},
            )
        assert self.cipher is not None
        customer = wire.customer_id(customer_id)
        login = wire.customer_id(login_customer_id) if login_customer_id else None
        action = wire.conversion_action(conversion_action, customer)
        if refresh_token is None and await get_connection(conn, scope) is None:
            raise ValidationFailed(RULE_FIRST_TOKEN, details={"field": "refresh_token"})
        sealed = (
            None
            if refresh_token is None
            else self.cipher.encrypt(refresh_token, site_id=scope.site_id)
        )
        now = self._now()
        after, before = await save_connection(
            conn,
            scope,
            customer_id=customer,
            conversion_action=action,
            login_customer_id=login,
            token_ciphertext=sealed,
            now=now,
        )
        reopened = await reopen_not_connected(conn, scope, now=now)
        waiting = await pending_count(conn, scope)
        if waiting:  # resumes paused uploads, and starts the reopened ones
            await ensure_flush(conn, scope, self._queue(), now=self.clock.now())
        await record_audit(
            conn,
            actor=scope.actor,
            action="ads.connected" if before is None else "ads.reconnected",
            subject=f"site:{scope.site_id}",
            site_id=scope.site_id,
            before=_audit_view(before),
            after=_audit_view(after),
            details={
                "token_replaced": refresh_token is not None,
                "reopened": reopened,
                "pending": waiting,
            },
            ts=now,
        )
        return connection_view(after)

    async def disconnect(self, conn: AsyncConnection, scope: SiteScope) -> None:
        """Forget the connection and its token; pending uploads end as ``not_connected`` (a
        new connection queues them again)."""
        require_manage(scope)
        before = await delete_connection(conn, scope)
        if before is not None:
            await record_audit(
                conn,
                actor=scope.actor,
                action="ads.disconnected",
                subject=f"site:{scope.site_id}",
                site_id=scope.site_id,
                before=_audit_view(before),
                ts=self._now(),
            )

    # --- uploads -------------------------------------------------------------------------
    async def upload(
        self, conn: AsyncConnection, scope: SiteScope, intent_id: int
    ) -> dict[str, Any]:
        """One intent's upload state with its ledger; an unsealed intent answers ``none``."""
        await self._require_intent(conn, scope, intent_id)  # a deleted one is 404 too
        row = await get_upload(conn, scope, intent_id)
        if row is None:
            return {**unsealed_view(intent_id), "attempts_log": []}
        return {**upload_view(row), "attempts_log": await attempts_of(conn, scope, intent_id)}

    async def summary(self, conn: AsyncConnection, scope: SiteScope) -> dict[str, Any]:
        counts = await summary(conn, scope)
        return {"connection": await self.connection(conn, scope), **counts}

    async def _require_intent(self, conn: AsyncConnection, scope: SiteScope, intent_id: int) -> Any:
        row = (
            await conn.execute(
                select(track_intents).where(
                    where_site(track_intents, scope),
                    track_intents.c.id == intent_id,
                    track_intents.c.deleted_at.is_(None),
                )
            )
        ).first()
        if row is None:
            raise NotFound("no such intent")
        return row

    async def retry(
        self, conn: AsyncConnection, scope: SiteScope, intent_id: int
    ) -> dict[str, Any]:
        """Queue a failed or not-eligible upload again, after its cause was fixed; refused
        (409) while the cause is still there."""
        require_manage(scope)
        row = await get_upload(conn, scope, intent_id)
        if row is None:
            await self._require_intent(conn, scope, intent_id)
            raise ApiError(409, "not_sealed", "the intent is not sealed: nothing to upload")
        if row.status not in RETRYABLE:
            raise ApiError(
                409,
                "not_retryable",
                f"only a failed or not eligible upload is retried; this one is {row.status}",
                {"status": row.status},
            )
        intent = await self._require_intent(conn, scope, intent_id)
        kind, click, reason = click_of(intent)
        subject = row.consent_subject or await session_subject(conn, scope, intent.session_id)
        if reason is None:
            reason = await subject_reason(conn, subject, self.clock.now())
        if reason is None and await get_connection(conn, scope) is None:
            reason = NOT_CONNECTED
        if reason is not None:
            raise ApiError(
                409,
                "not_eligible",
                "the intent still may not be uploaded: " + MESSAGES[reason],
                {"reason": reason},
            )
        now = self._now()
        result = await conn.execute(
            update(U)
            .where(where_site(U, scope), U.c.intent_id == intent_id, U.c.status == row.status)
            .values(
                status=PENDING,
                reason=None,
                message=None,
                click_kind=kind,
                click_id=click,
                consent_subject=subject,
                attempts=0,
                next_attempt_at=now,
                lease_token=None,
                lease_until=None,
                updated_at=now,
            )
        )
        if result.rowcount != 1:
            raise ApiError(409, "upload_changed", "the upload changed meanwhile; read it again")
        await ensure_flush(conn, scope, self._queue(), now=self.clock.now())
        await record_audit(
            conn,
            actor=scope.actor,
            action="ads.upload_retried",
            subject=f"site:{scope.site_id}",
            details={"intent": intent_id, "from": row.status, "reason": row.reason},
            ts=now,
        )
        return await self.upload(conn, scope, intent_id)

    # --- the queue's dead letters -----------------------------------------------------------
    async def on_dead(self, job: Job, error: str) -> None:
        """A site's upload job that kept crashing: a new one takes over after a pause, so the
        site's pending rows are never left without a job."""
        try:
            site_id = int(job.payload["site_id"])
        except (KeyError, TypeError, ValueError):
            return
        scope = SiteScope(site_id=site_id, role="admin", actor="worker:ads")
        async with self.db.begin() as conn:
            await drop_flush(conn, scope, job.key)
            await ensure_flush(
                conn, scope, self._queue(), now=self.clock.now(), delay=DEAD_JOB_PAUSE
            )
