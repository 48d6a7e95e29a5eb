"""The upload job: the one job responsible for a site's pending conversions
(``service/ads/flush.py``). Each run uploads the site's due rows in batches of at most
``ads_batch_size`` (2,000) per request - a few batches, then it yields.

A run ends the job when no row of the site is pending, or when the site's connection is paused
or gone (a reconnect queues a new job); otherwise the job defers itself (``RetryLater``, no
attempt used) until the next row is due: after a backoff, 6 hours after a ``TOO_RECENT_*``
answer, or when the lease of a batch that died runs out.

Every outcome is fenced by the batch's lease (``service/ads/claims.py``), and Google deduplicates
by ``orderId``: a worker killed after Google recorded a batch but before kervan did leaves the
rows leased; once the lease runs out they are sent again and answered ``ORDER_ID_ALREADY_IN_USE``
(or ``CLICK_CONVERSION_ALREADY_EXISTS``), which counts as uploaded - never twice.

A circuit breaker per Google Ads customer defers the job of a customer whose requests keep
failing (429, 5xx, timeouts) without spending its rows' attempts.
"""

from __future__ import annotations

import enum
import random
from datetime import datetime
from typing import Any

from sqlalchemy import exists, or_, update

from core.clock import Clock
from core.jobs import BackoffPolicy, Job, PermanentFailure, RetryLater
from core.jobs.backoff import backoff_ceiling
from service.ads import metrics as m
from service.ads.claims import Batch, Claimed, Settled, claim_batch, next_due, settle
from service.ads.connections import (
    ACTIVE,
    PAUSED,
    Connection,
    get_connection,
    pause_connection,
)
from service.ads.crypto import TokenCipher, TokenUnreadable
from service.ads.eligibility import (
    MESSAGES,
    NO_CLICK_ID,
    NO_CONSENT_SUBJECT,
    NOT_CONNECTED,
    SITE_DELETED,
    consent_reason,
    consent_states,
)
from service.ads.flush import drop_flush, release_flush, sleeping
from service.ads.google import AccessTokens, GoogleAds, TransportFailure, access_token_from
from service.ads.ledger import LedgerEntries
from service.ads.outcomes import (
    Action,
    RequestOutcome,
    RowOutcome,
    Verdict,
    classify_row,
    classify_token_status,
    classify_upload_status,
)
from service.ads.settings import AdsSettings
from service.ads.uploads import (
    CONNECTION_PAUSED,
    FAILED,
    NOT_ELIGIBLE,
    PAUSED_MESSAGE,
    PENDING,
    RETRIES_EXHAUSTED,
    UPLOADED,
)
from service.ads.wire import (
    Conversion,
    click_conversion,
    parse_rpc_error,
    parse_upload_answer,
    upload_body,
)
from service.audit import record_audit
from service.db import Database
from service.db.tables.ads import ads_connections, ads_uploads
from service.db.types import from_timestamp
from service.logging import get_logger
from service.queue.breakers import BreakerBoard
from service.tracking.scope import SiteScope, where_site
from service.tracking.sites import Site, get_site

log = get_logger("kervan.ads")

ACTOR = "worker:ads"
#: The least a job waits before looking at its rows again.
MIN_DEFER = 0.5
#: Batches one run of a job uploads before it yields (its time limit covers this many).
MAX_BATCHES_PER_RUN = 3


def _unleased(now: datetime) -> tuple[Any, ...]:
    """Pending rows no live batch holds."""
    return (
        ads_uploads.c.status == PENDING,
        or_(ads_uploads.c.lease_until.is_(None), ads_uploads.c.lease_until <= now),
    )


def breaker_name(customer_id: str) -> str:
    return f"google_ads:{customer_id}"


class Health(enum.Enum):
    """What a batch says about the customer's endpoint, for its circuit breaker."""

    SUCCESS = "success"
    FAILURE = "failure"
    NEUTRAL = "neutral"


def _site_of(job: Job) -> int:
    try:
        return int(job.payload["site_id"])
    except (KeyError, TypeError, ValueError):
        raise PermanentFailure("an upload job needs a site_id") from None


def _scope(site_id: int, site: Site | None) -> SiteScope:
    if site is None:
        return SiteScope(site_id=site_id, role="admin", actor=ACTOR)
    return SiteScope(
        site_id=site.id,
        role="admin",
        actor=ACTOR,
        time_zone=site.time_zone,
        currency=site.currency,
    )


class Uploader:
    def __init__(
        self,
        *,
        settings: AdsSettings,
        db: Database,
        clock: Clock,
        cipher: TokenCipher | None,
        google: GoogleAds,
        breakers: BreakerBoard,
        lease_seconds: float,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.cipher = cipher
        self.google = google
        self.breakers = breakers
        self.tokens = AccessTokens()
        self.lease_seconds = lease_seconds
        self.backoff = BackoffPolicy(
            base=settings.ads_retry_backoff_base_seconds,
            cap=settings.ads_retry_backoff_cap_seconds,
        )
        self._rng = rng or random.Random()

    # --- the job -----------------------------------------------------------------------
    async def handle(self, job: Job) -> None:
        site_id = _site_of(job)
        async with self.db.connect() as conn:
            site = await get_site(conn, site_id)
            scope = _scope(site_id, site)
            connection = await get_connection(conn, scope) if site is not None else None
        if site is None or connection is None:
            reason = SITE_DELETED if site is None else NOT_CONNECTED
            await self._close_pending(scope, reason, job.key)
            return None
        if connection.flush_key != job.key:
            return None  # another job is responsible for the site (or none is needed)
        if connection.paused:
            await self._pause_pending(scope, job.key)
            return None
        breaker = self.breakers.get(breaker_name(connection.customer_id))
        full = False
        for _ in range(MAX_BATCHES_PER_RUN):
            if not breaker.allow():
                self.breakers.publish()
                raise RetryLater(
                    max(1.0, breaker.retry_after()), f"circuit open for {connection.customer_id}"
                )
            health, stop = Health.NEUTRAL, True
            try:
                batch = await claim_batch(
                    self.db,
                    scope,
                    limit=self.settings.ads_batch_size,
                    lease_seconds=self.lease_seconds,
                    now=self.clock.now(),
                )
                if batch.rows:
                    run = await self._upload(site, scope, connection, batch)
                    health = run.health
                    full = len(batch.rows) >= self.settings.ads_batch_size
                    stop = run.pause is not None or health is Health.FAILURE or not full
            finally:
                if health is Health.SUCCESS:
                    breaker.record_success()
                elif health is Health.FAILURE:
                    breaker.record_failure()
                else:
                    breaker.record_neutral()
            if stop:
                full = False
                break
        return await self._settle_job(scope, job.key, more=full)

    async def _settle_job(self, scope: SiteScope, key: str, *, more: bool) -> None:
        """Done when no row of the site is pending; else wait for the next one that is due."""
        async with self.db.begin() as conn:
            if await release_flush(conn, scope, key):
                return None
            connection = await get_connection(conn, scope)
            if connection is None or connection.flush_key != key:
                return None
            if connection.paused:
                await self._pause_rows(conn, scope, key)
                return None
            due = await next_due(conn, scope)
            now = self.clock.now()
            wait = 0.0 if more else max(MIN_DEFER, (now if due is None else due) - now)
            await sleeping(conn, scope, key, from_timestamp(now + wait))
        raise RetryLater(wait, "more rows are due" if more else "pending rows wait")

    async def _close_pending(self, scope: SiteScope, reason: str, key: str) -> None:
        """The site or its connection is gone: its pending rows are not uploaded (a new
        connection queues the ``not_connected`` ones again; a restored site's are retried)."""
        now = from_timestamp(self.clock.now())
        conditions = [where_site(ads_uploads, scope), *_unleased(now)]
        if reason == NOT_CONNECTED:
            # Only while the site still has no connection: a reconnect in between keeps them.
            conditions.append(~exists().where(where_site(ads_connections, scope)))
        async with self.db.begin() as conn:
            await conn.execute(
                update(ads_uploads)
                .where(*conditions)
                .values(
                    status=NOT_ELIGIBLE, reason=reason, message=MESSAGES[reason], updated_at=now
                )
            )
            await drop_flush(conn, scope, key)

    async def _pause_pending(self, scope: SiteScope, key: str) -> None:
        async with self.db.begin() as conn:
            await self._pause_rows(conn, scope, key)

    async def _pause_rows(self, conn: Any, scope: SiteScope, key: str) -> None:
        """Uploads are paused: the pending rows say so, and no job stays responsible (the
        reconnect queues one) - nothing spends attempts meanwhile."""
        now = from_timestamp(self.clock.now())
        await conn.execute(
            update(ads_uploads)
            .where(where_site(ads_uploads, scope), *_unleased(now))
            .values(reason=CONNECTION_PAUSED, message=PAUSED_MESSAGE, updated_at=now)
        )
        await drop_flush(conn, scope, key)

    # --- one batch ---------------------------------------------------------------------
    async def _upload(
        self, site: Site, scope: SiteScope, connection: Connection, batch: Batch
    ) -> _Run:
        now = self.clock.now()
        run = _Run(self, scope, connection, batch, from_timestamp(now))
        sendable = await run.check_consent()
        if not sendable:
            await run.finish()
            return run
        access = await run.access_token(sendable)
        if access is None:
            await run.finish()
            return run
        conversions = [
            click_conversion(_conversion(row), connection.conversion_action, site.time_zone)
            for row in sendable
        ]
        try:
            answer = await self.google.upload(
                customer_id=connection.customer_id,
                login_customer_id=connection.login_customer_id,
                access_token=access,
                body=upload_body(conversions),
                clock=self.clock,
            )
        except TransportFailure as failure:
            m.REQUESTS.labels("request", failure.kind).inc()
            run.ledger.request(
                "request", failure.kind, latency=failure.latency, batch_size=len(sendable)
            )
            run.back_off(sendable, failure.kind, f"no answer from Google Ads ({failure.detail})")
            run.health = Health.FAILURE
            await run.finish()
            return run
        m.REQUEST_SECONDS.observe(answer.latency)
        if 200 <= answer.status < 300:
            parsed = parse_upload_answer(answer.body, len(sendable))
            request_id = answer.request_id or parsed.request_id
            outcome = "partial" if parsed.row_errors else "ok"
            m.REQUESTS.labels("request", outcome).inc()
            run.request_id = request_id
            run.ledger.request(
                "request",
                outcome,
                request_id=request_id,
                http_status=answer.status,
                latency=answer.latency,
                batch_size=len(sendable),
            )
            for index, row in enumerate(sendable):
                run.row_outcome(row, classify_row(parsed.row_errors.get(index, [])), answer.latency)
            run.health = Health.SUCCESS
            await run.finish()
            return run
        _status, message, errors, rpc_request_id = parse_rpc_error(answer.body)
        verdict = classify_upload_status(answer.status, errors, message, answer.retry_after)
        request_id = answer.request_id or rpc_request_id
        m.REQUESTS.labels("request", verdict.action.value).inc()
        run.request_id = request_id
        run.ledger.request(
            "request",
            verdict.action.value,
            request_id=request_id,
            error_code=verdict.reason,
            http_status=answer.status,
            latency=answer.latency,
            batch_size=len(sendable),
        )
        run.apply(sendable, verdict, answer.status, answer.latency)
        run.health = Health.FAILURE if verdict.breaker_failure else Health.NEUTRAL
        await run.finish()
        return run

    def backoff_delay(self, attempts: int) -> float:
        """Equal jitter: at least half the exponential ceiling, so a failed batch never comes
        straight back, and spread so many batches do not return together."""
        ceiling = backoff_ceiling(max(1, attempts), self.backoff.base, self.backoff.cap)
        return ceiling * (0.5 + self._rng.random() / 2)


def _conversion(row: Claimed) -> Conversion:
    assert row.click_kind is not None and row.click_id is not None
    return Conversion(
        intent_id=row.intent_id,
        order_id=row.order_id,
        click_kind=row.click_kind,
        click_id=row.click_id,
        conversion_at=row.conversion_at,
        value=row.value,
        currency=row.currency,
    )


class _Run:
    """The outcomes of one batch, gathered and then written in one transaction."""

    def __init__(
        self,
        uploader: Uploader,
        scope: SiteScope,
        connection: Connection,
        batch: Batch,
        at: datetime,
    ) -> None:
        self.uploader = uploader
        self.scope = scope
        self.connection = connection
        self.batch = batch
        self.at = at
        self.now = at.timestamp()
        self.ledger = LedgerEntries(scope, connection.customer_id, at)
        self.settled: list[Settled] = []
        self.request_id: str | None = None
        self.pause: RequestOutcome | None = None
        self.health = Health.NEUTRAL

    # --- before the request -------------------------------------------------------------
    async def check_consent(self) -> list[Claimed]:
        """Consent again at the upload: a withdrawal or an expiry since the seal stops it."""
        subjects = [r.consent_subject for r in self.batch.rows if r.consent_subject]
        async with self.uploader.db.connect() as conn:
            states = await consent_states(conn, subjects)
        sendable: list[Claimed] = []
        for row in self.batch.rows:
            if not row.click_kind or not row.click_id:
                reason: str | None = NO_CLICK_ID
            elif not row.consent_subject:
                reason = NO_CONSENT_SUBJECT
            else:
                reason = consent_reason(states.get(row.consent_subject), self.now)
            if reason is None:
                sendable.append(row)
                continue
            self.settled.append(
                Settled(row.intent_id, NOT_ELIGIBLE, reason, MESSAGES[reason], give_back=True)
            )
            self.ledger.row(row.intent_id, row.attempts, "not_eligible", error_code=reason)
            m.CONVERSIONS.labels("not_eligible").inc()
        return sendable

    async def access_token(self, sendable: list[Claimed]) -> str | None:
        """An access token for the connection; None when there is none to be had (the rows'
        outcomes are then set: paused or backing off)."""
        uploader, connection = self.uploader, self.connection
        cached = uploader.tokens.get(connection.site_id, connection.generation, self.now)
        if cached is not None:
            return cached
        try:
            if uploader.cipher is None:
                raise TokenUnreadable("KERVAN_ADS_TOKEN_KEY is not set")
            refresh_token = uploader.cipher.decrypt(
                connection.token_ciphertext, site_id=connection.site_id
            )
        except TokenUnreadable as exc:
            self.apply(
                sendable,
                RequestOutcome(Action.PAUSE, "token_unreadable", f"{exc}; connect again"),
                None,
                None,
            )
            return None
        try:
            answer = await uploader.google.refresh(refresh_token, uploader.clock)
        except TransportFailure as failure:
            m.REQUESTS.labels("token", failure.kind).inc()
            self.ledger.request("token", failure.kind, latency=failure.latency)
            self.back_off(sendable, f"oauth_{failure.kind}", "no answer from the token endpoint")
            self.health = Health.FAILURE
            return None
        token = access_token_from(answer.body, self.now) if answer.status == 200 else None
        if token is not None:
            m.REQUESTS.labels("token", "ok").inc()
            self.ledger.request("token", "ok", http_status=answer.status, latency=answer.latency)
            uploader.tokens.put(connection.site_id, connection.generation, token)
            return token.value
        body = answer.body if isinstance(answer.body, dict) else {}
        error = str(body.get("error", "")) or f"http_{answer.status}"
        verdict = classify_token_status(
            answer.status, error, str(body.get("error_description", ""))
        )
        m.REQUESTS.labels("token", verdict.reason).inc()
        self.ledger.request(
            "token",
            verdict.reason,
            error_code=error,
            http_status=answer.status,
            latency=answer.latency,
        )
        self.apply(sendable, verdict, answer.status, answer.latency)
        self.health = Health.FAILURE if verdict.breaker_failure else Health.NEUTRAL
        return None

    # --- outcomes -----------------------------------------------------------------------
    def row_outcome(self, row: Claimed, outcome: RowOutcome, latency: float | None) -> None:
        if outcome.verdict is Verdict.DONE:
            label = "duplicate" if outcome.reason else "uploaded"
            self.settled.append(Settled(row.intent_id, UPLOADED, outcome.reason))
            self._row(row, label, outcome.reason, latency)
        elif outcome.verdict is Verdict.PERMANENT:
            self.settled.append(Settled(row.intent_id, FAILED, outcome.reason, outcome.message))
            self._row(row, "failed", outcome.reason, latency)
        else:
            delay = outcome.delay
            if delay is None:
                delay = self.uploader.backoff_delay(row.attempts)
            self._retry(row, outcome.reason or "retry", outcome.message, delay, latency)

    def back_off(self, rows: list[Claimed], reason: str, message: str | None) -> None:
        attempts = max((r.attempts for r in rows), default=1)
        delay = self.uploader.backoff_delay(attempts)
        for row in rows:
            self._retry(row, reason, message, delay, None)

    def _retry(
        self,
        row: Claimed,
        reason: str,
        message: str | None,
        delay: float,
        latency: float | None,
    ) -> None:
        if row.attempts >= self.uploader.settings.ads_max_attempts:
            text = f"Gave up after {row.attempts} attempts; the last answer: {reason}"
            self.settled.append(Settled(row.intent_id, FAILED, RETRIES_EXHAUSTED, text))
            self._row(row, "failed", reason, latency)
            return
        next_at = from_timestamp(self.now + delay)
        self.settled.append(Settled(row.intent_id, PENDING, reason, message, next_at))
        self._row(row, "retry", reason, latency)

    def apply(
        self,
        rows: list[Claimed],
        verdict: RequestOutcome,
        http_status: int | None,
        latency: float | None,
    ) -> None:
        """A request-level outcome for every row of the request."""
        if verdict.action is Action.PAUSE:
            self.pause = verdict
            self.uploader.tokens.drop(self.connection.site_id)
            for row in rows:
                self.settled.append(
                    Settled(
                        row.intent_id,
                        PENDING,
                        CONNECTION_PAUSED,
                        PAUSED_MESSAGE,
                        give_back=True,
                    )
                )
                self.ledger.row(
                    row.intent_id,
                    row.attempts,
                    "released",
                    request_id=self.request_id,
                    error_code=verdict.reason,
                    http_status=http_status,
                    latency=latency,
                )
                m.CONVERSIONS.labels("released").inc()
            return
        if verdict.action is Action.REFRESH:
            self.uploader.tokens.drop(self.connection.site_id)
            for row in rows:
                self._retry(row, verdict.reason, verdict.message, 0.0, latency)
            return
        if verdict.retry_after is not None:
            for row in rows:
                self._retry(row, verdict.reason, verdict.message, verdict.retry_after, latency)
            return
        self.back_off(rows, verdict.reason, verdict.message)

    def _row(self, row: Claimed, outcome: str, code: str | None, latency: float | None) -> None:
        self.ledger.row(
            row.intent_id,
            row.attempts,
            outcome,
            request_id=self.request_id,
            error_code=code,
            latency=latency,
        )
        m.CONVERSIONS.labels(outcome).inc()

    async def finish(self) -> None:
        async with self.uploader.db.begin() as conn:
            if self.pause is not None:
                paused = await pause_connection(
                    conn,
                    self.scope,
                    generation=self.connection.generation,
                    reason=self.pause.reason,
                    message=self.pause.message,
                    now=self.at,
                )
                if paused:
                    m.PAUSES.labels(self.pause.reason).inc()
                    log.warning(
                        "Google Ads uploads of site %d paused: %s",
                        self.scope.site_id,
                        self.pause.reason,
                        extra={"site": self.scope.site_id, "reason": self.pause.reason},
                    )
                    await record_audit(
                        conn,
                        actor=ACTOR,
                        action="ads.paused",
                        subject=f"site:{self.scope.site_id}",
                        details={
                            "reason": self.pause.reason,
                            "message": self.pause.message,
                            "customer_id": self.connection.customer_id,
                        },
                        ts=self.at,
                        site_id=self.scope.site_id,
                        before={"status": ACTIVE},
                        after={"status": PAUSED, "status_reason": self.pause.reason},
                    )
            await settle(
                conn,
                self.scope,
                self.batch.token,
                self.settled,
                request_id=self.request_id,
                now=self.at,
            )
            await self.ledger.write(conn)
