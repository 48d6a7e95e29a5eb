"""``POST /t/sync`` behind the HTTP mapping: one batch of a site's script, answered event by
event.

In order: the envelope (``core.tracking.wire``: the only whole-batch refusals besides the
site's key and origin, the quota and the size limits), the site and its origin, the
``Idempotency-Key`` replay, each event's own checks (``core.tracking.events``), then one
transaction that stores the new events with their dedup rows, sessions, intents and the
month's usage (``service.tracking.batch``), and last the speculation flows fed from the page
views (``service.tracking.flowfeed``).

Quotas per site and month: past the event limit events are refused (``quota_exceeded``, and a
whole batch 429 once nothing fits); past the intent limit clicks are still stored as events but
make no intent (accepted with the warning ``intent_quota_exceeded``). The owners' warnings at
the early share and at 100 % are queued in the batch's transaction
(``service.tracking.quota_warning``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.clock import Clock
from core.errors import ValidationFailed
from core.tracking.attribution import attribute, own_hosts
from core.tracking.device import device_type
from core.tracking.events import Checked, Duplicate, Event, EventRules, Rejected, check_events
from core.tracking.events import clock_offset as offset_of
from core.tracking.quota import QuotaState, month_end, month_of
from core.tracking.score import weights_from_config
from core.tracking.wire import Envelope, parse_envelope
from service.db import Database
from service.db.types import from_timestamp
from service.errors import ApiError
from service.logging import get_logger
from service.settings import Settings
from service.tracking import idempotency, quota
from service.tracking.access import script_scope
from service.tracking.batch import BatchContext, QuotaFull, Written
from service.tracking.flowfeed import FlowFeed, site_segment
from service.tracking.ingest_metrics import (
    ACCEPTED,
    BATCHES,
    DUPLICATE,
    EVENTS,
    QUOTA_NOTICES,
    QUOTA_REFUSALS,
    QUOTA_WARNINGS,
)
from service.tracking.quota_warning import QuotaWarner, level_name
from service.tracking.sessions import Visit
from service.tracking.sitecache import SiteCache
from service.tracking.sites import Site
from service.tracking.writer import BatchWriter, Job

log = get_logger("kervan.tracking.ingest")

#: Events older than the dedup window less this margin are refused: the dedup rows of the
#: window's oldest events may be purged by the time a resend arrives.
DEDUP_MARGIN_SECONDS = 3600.0
#: What the script may read of an answer (besides the CORS-safelisted fields).
EXPOSED_HEADERS = (
    "Retry-After, X-Quota-Limit, X-Quota-Remaining, X-Quota-Reset, Idempotent-Replayed, "
    "X-Request-ID, RateLimit, RateLimit-Policy"
)


@dataclass(frozen=True, slots=True)
class SyncRequest:
    body: Any
    #: The body as received (the Idempotency-Key's request fingerprint).
    raw: bytes
    origin: str | None
    idempotency_key: str | None
    user_agent: str | None
    #: The visitor's country from a trusted proxy's header, already checked.
    country: str | None


@dataclass(frozen=True, slots=True)
class SyncAnswer:
    status: int
    body: Any
    headers: dict[str, str]


def cors_headers(origin: str) -> dict[str, str]:
    """What a page of ``origin`` needs to read the answer (credentials: sendBeacon sends
    cookies, and the answer must allow them or the browser hides it)."""
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Expose-Headers": EXPOSED_HEADERS,
    }


def _result(checked: Checked, written: Written, stored: set[str]) -> dict[str, Any]:
    if isinstance(checked, Rejected):
        return {
            "id": checked.id,
            "outcome": "rejected",
            "reason": checked.reason,
            "message": checked.message,
        }
    if isinstance(checked, Duplicate):
        return {"id": checked.id, "outcome": "duplicate"}
    event_id = checked.id
    if event_id in stored:
        if event_id in written.intent_refused:
            return {
                "id": event_id,
                "outcome": "accepted",
                "warning": "intent_quota_exceeded",
                "message": "stored as an event; the site's monthly intent quota is used up, "
                "so it made no intent",
            }
        if event_id in written.ref_taken:
            return {
                "id": event_id,
                "outcome": "accepted",
                "warning": "ref_code_taken",
                "message": "the reference code is another intent's; stored without it",
            }
        return {"id": event_id, "outcome": "accepted"}
    if event_id in written.over_quota:
        return {
            "id": event_id,
            "outcome": "rejected",
            "reason": "quota_exceeded",
            "message": "the site's monthly event quota is used up",
        }
    failed = written.failed.get(event_id)
    if failed is not None:
        return {
            "id": event_id,
            "outcome": "rejected",
            "reason": "storage_failed",
            "message": failed,
        }
    return {"id": event_id, "outcome": "duplicate"}


def answer_body(checked: Sequence[Checked], written: Written) -> dict[str, Any]:
    stored = {p.event.id for p in written.placed}
    results = [_result(c, written, stored) for c in checked]
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for result in results:
        counts[result["outcome"]] += 1
    last = max(written.placed, key=lambda p: (p.event.ts, p.event.index), default=None)
    return {
        "results": results,
        "accepted": counts["accepted"],
        "duplicates": counts["duplicate"],
        "rejected": counts["rejected"],
        "session": str(last.session.id) if last is not None else None,
    }


class TrackingIngest:
    """The ingest facility (``runtime.facility(TrackingIngest)``)."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        clock: Clock,
        sites: SiteCache,
        feed: FlowFeed,
        writer: BatchWriter,
        warner: QuotaWarner | None = None,
    ) -> None:
        self.settings = settings
        self.warner = warner
        self.db = db
        self.clock = clock
        self.sites = sites
        self.feed = feed
        self.writer = writer
        #: ``(site, month) -> limit`` of quotas seen used up: refused without a query.
        self._full: dict[tuple[int, str], int] = {}
        #: ``(site, month) -> intent limit`` of intent quotas seen used up: clicks make no
        #: intent without the exact path.
        self._intents_full: dict[tuple[int, str], int] = {}
        #: ``(site, month) -> events`` last seen by this process, for the quota headers of an
        #: answer that stored nothing (a resend).
        self._used: dict[tuple[int, str], int] = {}

    def forget_site(self, public_key: str | None = None) -> None:
        """A site changed in this process: its next batch reads it again."""
        self.sites.forget(public_key)
        self._full.clear()
        self._intents_full.clear()
        self._used.clear()

    # --- the batch ------------------------------------------------------------------------

    def _envelope(self, body: Any) -> Envelope:
        try:
            return parse_envelope(body, self.settings.tracking_max_batch_events)
        except ValidationFailed as error:
            raise ApiError(422, error.code, error.message, error.details) from None

    async def _site(self, envelope: Envelope, origin: str | None) -> Site:
        site = await self.sites.by_key(envelope.site_key)
        if site is None:
            raise ApiError(404, "unknown_site", "no site has this key")
        if not site.allows_origin(origin):
            raise ApiError(
                403,
                "origin_not_allowed",
                "the request's Origin is not one of the site's domains",
                {"origin": (origin or "")[:200] or None},
            )
        return site

    def _quota_refusal(
        self, state: QuotaState, now: float, cors: dict[str, str], events: int
    ) -> ApiError:
        BATCHES.labels("over_quota").inc()
        QUOTA_REFUSALS.labels("events").inc(events)
        return ApiError(
            429,
            "quota_exceeded",
            "the site's monthly event quota is used up; it starts over at the month's end",
            {"limit": state.limit, "reset_at": int(state.reset_at)},
            {**cors, "Retry-After": str(state.retry_after(now)), **state.headers()},
        )

    async def sync(self, request: SyncRequest) -> SyncAnswer:
        settings = self.settings
        now = self.clock.now()
        envelope = self._envelope(request.body)
        site = await self._site(envelope, request.origin)
        assert request.origin is not None
        cors = cors_headers(request.origin)
        scope = script_scope(site)
        month, reset_at = month_of(now), month_end(now)
        limit = quota.monthly_event_limit(site, settings)
        intent_limit = quota.monthly_intent_limit(site, settings)
        now_at = from_timestamp(now)
        key = idempotency.check_key(request.idempotency_key)
        digest = idempotency.request_hash(request.raw) if key else None
        not_before = from_timestamp(now - settings.tracking_idempotency_hours * 3600.0)
        replace_before: datetime | None = None
        if key is not None and digest is not None:
            async with self.db.connect() as conn:
                found = await idempotency.lookup(conn, scope, key, digest, not_before)
                replay = found.replay
                if replay is not None:
                    used = (await quota.usage(conn, scope, month)).events
                    BATCHES.labels("replayed").inc()
                    headers = {**cors, **QuotaState(limit, used, reset_at).headers()}
                    headers["Idempotent-Replayed"] = "true"
                    return SyncAnswer(replay.status, replay.body, headers)
            if found.expired:
                replace_before = not_before
        if self._full.get((site.id, month)) == limit:
            raise self._quota_refusal(
                QuotaState(limit, limit, reset_at), now, cors, len(envelope.events)
            )

        max_age = settings.tracking_dedup_days * 86_400.0 - DEDUP_MARGIN_SECONDS
        rules = EventRules(
            now,
            settings.tracking_max_event_bytes,
            max_age,
            offset_of(now, envelope.sent_at_ms),
            batch_bytes=len(request.raw),
        )
        checked = check_events(envelope.events, rules)
        candidates = [c for c in checked if isinstance(c, Event)]
        hosts = own_hosts(site.domains)
        landing = envelope.landing or envelope.context
        ctx = BatchContext(
            scope=scope,
            visit=Visit(
                visitor=envelope.visitor,
                device=device_type(request.user_agent, envelope.device_hint),
                country=request.country,
                consent_subject=envelope.consent_subject,
            ),
            hosts=hosts,
            fallback=attribute(landing.url, landing.referrer, hosts),
            timeout_seconds=settings.tracking_session_timeout_minutes * 60.0,
            weights=weights_from_config(site.config.get("lead_score_weights")),
            month=month,
            limit=limit,
            now=now_at,
            intent_limit=intent_limit,
            intents_full=self._intents_full.get((site.id, month)) == intent_limit,
            warner=self.warner,
        )
        try:
            written, body = await self._store(ctx, checked, candidates, key, digest, replace_before)
        except QuotaFull as full:
            self._full[(site.id, month)] = limit
            raise self._quota_refusal(
                QuotaState(limit, full.used, reset_at), now, cors, len(candidates)
            ) from None
        if written.intents_used is not None and written.intents_used >= intent_limit:
            self._intents_full[(site.id, month)] = intent_limit
        if written.used is not None:
            used = self._used[(site.id, month)] = written.used
        elif (site.id, month) in self._used:
            used = self._used[(site.id, month)]
        else:
            async with self.db.connect() as conn:
                used = (await quota.usage(conn, scope, month)).events
        if used >= limit:
            self._full[(site.id, month)] = limit
        self._count(body)
        _count_quota(written)
        await self._feed_flows(site, written)
        return SyncAnswer(200, body, {**cors, **QuotaState(limit, used, reset_at).headers()})

    async def _store(
        self,
        ctx: BatchContext,
        checked: Sequence[Checked],
        candidates: Sequence[Event],
        key: str | None,
        digest: str | None,
        replace_before: datetime | None,
    ) -> tuple[Written, dict[str, Any]]:
        if not candidates and key is None:
            return Written(), answer_body(checked, Written())
        job = Job(ctx, checked, candidates, answer_body, key, digest, replace_before)
        return await self.writer.write(job)

    def _count(self, body: dict[str, Any]) -> None:
        BATCHES.labels("stored").inc()
        if body["accepted"]:
            ACCEPTED.inc(body["accepted"])
        if body["duplicates"]:
            DUPLICATE.inc(body["duplicates"])
        if body["rejected"]:
            for result in body["results"]:
                if result["outcome"] == "rejected":
                    EVENTS.labels("rejected", result["reason"]).inc()
                    if result["reason"] == "quota_exceeded":
                        QUOTA_REFUSALS.labels("events").inc()

    async def _feed_flows(self, site: Site, written: Written) -> None:
        views = [
            (f"t{site.id}-{session.id}", ts, path)
            for session in {id(p.session): p.session for p in written.placed}.values()
            for ts, path in session.views
        ]
        if not views:
            return
        try:
            await self.feed.add(site_segment(site, self.settings.speculation_segments), views)
        except Exception as error:
            # The events are stored; the navigation statistics can miss a batch.
            log.warning("flows feed failed: %s", error)


def _count_quota(written: Written) -> None:
    """The batch's intents refused, and the quota warnings its committed transaction raised
    and queued."""
    if written.intent_refused:
        QUOTA_REFUSALS.labels("intents").inc(len(written.intent_refused))
    for warned in written.warned:
        QUOTA_WARNINGS.labels(warned.kind, level_name(warned.level)).inc()
        for channel, queued in warned.notices.items():
            QUOTA_NOTICES.labels(channel).inc(queued)
