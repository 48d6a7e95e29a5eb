"""The trash of lead tracking: sites and intents deleted softly, restorable for a while.

Deleting sets ``deleted_at`` and changes nothing else, so a restore brings the item back exactly
as it was. From the deletion on, every listing and lookup passes over it:

- a deleted site is 404 to everyone through ``scope_for`` (dashboards, members, intents, ads),
  ``get_site``, ``list_sites`` and ``sites_of_person``; it accepts no ingest and its script is
  404 (``site_by_key``): at once in this process, whose site cache entry is dropped here, and
  within the cache's TTL (``sitecache.DEFAULT_TTL_SECONDS``, 10 s) in every other process; its
  calls token is refused (``calls.site_for_token``); its pending Google Ads uploads end as
  ``not_eligible``/``site_deleted`` when its upload job next runs;
- a deleted intent leaves the ledger, the dashboard's counts (raw days, and the cached KPIs are
  dropped; days before the raw horizon are daily rollups and keep their figures), the session
  timeline, the lifecycle
  (status, seal), WhatsApp reference codes, call matching and Google Ads: a sealed intent's
  conversion not uploaded yet is not claimed while it is deleted (``service.ads.claims``).

Who may:

- delete a site: its owners and platform admins (an owner may leave a platform on its own, as
  any B2B customer expects); restore it: platform admins, and its owners (their membership is
  kept while it is deleted); list deleted sites: admins every one, a person those it owns;
- delete an intent: editors, owners and admins (those who change its status); restore it and
  read the site's trash: owners and admins.

A restore is possible for ``tracking_trash_retention_days`` after the deletion (410 ``expired``
after it); then the purge (``service/tracking/trash_purge.py``) removes the item with all its
data. Each change is one transaction opened here, with its audit record (``site.deleted``,
``site.restored``, ``intent.deleted``, ``intent.restored``; subject ``site:<id>``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.clock import Clock
from core.errors import NotFound
from service.ads.connections import get_connection
from service.ads.eligibility import MESSAGES, NOT_CONNECTED, SITE_DELETED
from service.ads.flush import ensure_flush
from service.ads.uploads import NOT_ELIGIBLE, PENDING, get_upload
from service.audit import record_audit
from service.db import Database
from service.db.tables.ads import ads_uploads
from service.db.tables.tracking import site_members, sites, track_intents, track_sessions
from service.db.types import from_timestamp
from service.errors import ApiError
from service.queue.base import JobQueue
from service.runtime import Runtime
from service.tracking.access import Actor, require_edit, require_manage, scope_for
from service.tracking.dashboard_cache import kpis_changed
from service.tracking.dashboard_ledger import (
    MAX_ID,
    SESSION_FIELDS,
    decode_cursor,
    encode_cursor,
    intent_json,
    one_intent,
)
from service.tracking.dashboard_metrics import intents_with_sessions
from service.tracking.ingest import TrackingIngest
from service.tracking.scope import ALL_SITES, Role, SiteScope, where_site
from service.tracking.sites import Site, get_site, site_from_row
from service.tracking.sites_manage import site_out
from service.tracking.trash_window import check_restorable, not_deleted, restorable_until

DEFAULT_PAGE = 50
MAX_PAGE = 200


def _nothing(public_key: str | None) -> None:
    return None


def _no_queue() -> JobQueue | None:
    return None


async def _unchanged(site_id: int) -> None:
    return None


@dataclass(frozen=True, slots=True)
class SiteTrash:
    db: Database
    clock: Clock
    retention_days: int
    #: Drops a site from this process's ingest cache (``TrackingIngest.forget_site``).
    forget: Callable[[str | None], None] = _nothing
    #: The outbound queue, for the upload job of a restored site or intent.
    queue: Callable[[], JobQueue | None] = _no_queue
    #: After a committed change of a site's intents: its cached dashboard figures go.
    intents_changed: Callable[[int], Awaitable[None]] = _unchanged

    @classmethod
    def of(cls, runtime: Runtime) -> SiteTrash:
        ingest = runtime.facility(TrackingIngest)
        return cls(
            runtime.db,
            runtime.clock,
            runtime.settings.tracking_trash_retention_days,
            ingest.forget_site,
            lambda: runtime.queue,
            lambda site_id: kpis_changed(runtime, site_id),
        )

    def _now(self) -> datetime:
        return from_timestamp(self.clock.now())

    def _trashed(self, deleted_at: datetime) -> dict[str, Any]:
        return {
            "deleted_at": deleted_at,
            "restorable_until": restorable_until(deleted_at, self.retention_days),
        }

    # --- sites ---------------------------------------------------------------------------
    async def delete_site(self, actor: Actor, site_id: int) -> dict[str, Any]:
        """Delete a live site (its owners, admins): the deleted site, and until when it can be
        restored."""
        now = self._now()
        async with self.db.begin() as conn:
            site, scope = await scope_for(conn, actor, site_id)
            require_manage(scope)
            result = await conn.execute(
                update(sites)
                .where(sites.c.id == site.id, sites.c.deleted_at.is_(None))
                .values(deleted_at=now)
            )
            if result.rowcount != 1:  # deleted by a concurrent request
                raise NotFound("no such site")
            trashed = self._trashed(now)
            await record_audit(
                conn,
                actor=scope.actor,
                action="site.deleted",
                subject=f"site:{site.id}",
                details={
                    "site_id": site.id,
                    "name": site.name,
                    "restorable_until": trashed["restorable_until"].isoformat(),
                },
                ts=now,
            )
        self.forget(site.public_key)
        return {**site_out(site, scope.role), **trashed}

    async def restore_site(self, actor: Actor, site_id: int) -> dict[str, Any]:
        """Bring a deleted site back within its period, as it was."""
        now = self._now()
        async with self.db.begin() as conn:
            site, role = await _own_site(conn, actor, site_id)
            if site.deleted_at is None:
                raise not_deleted("site")
            check_restorable(site.deleted_at, now, self.retention_days)
            result = await conn.execute(
                update(sites)
                .where(sites.c.id == site.id, sites.c.deleted_at == site.deleted_at)
                .values(deleted_at=None)
            )
            if result.rowcount != 1:
                raise ApiError(409, "site_changed", "the site changed meanwhile; read it again")
            scope = SiteScope(site.id, role, actor.label, site.time_zone, site.currency)
            reopened = await self._reopen_uploads(conn, scope, now)
            await record_audit(
                conn,
                actor=scope.actor,
                action="site.restored",
                subject=f"site:{site.id}",
                details={
                    "site_id": site.id,
                    "name": site.name,
                    "deleted_at": site.deleted_at.isoformat(),
                    "uploads_reopened": reopened,
                },
                ts=now,
            )
            restored = await get_site(conn, site.id)
        assert restored is not None
        self.forget(site.public_key)
        return site_out(restored, role)

    async def _reopen_uploads(self, conn: AsyncConnection, scope: SiteScope, now: datetime) -> int:
        """Uploads the upload job closed because the site was deleted wait again: pending with
        a job responsible when the site has a connection (and the queue is there), else
        ``not_connected`` (a connect reopens those)."""
        closed = and_(
            where_site(ads_uploads, scope),
            ads_uploads.c.status == NOT_ELIGIBLE,
            ads_uploads.c.reason == SITE_DELETED,
        )
        if await get_connection(conn, scope) is None:
            await conn.execute(
                update(ads_uploads)
                .where(closed)
                .values(reason=NOT_CONNECTED, message=MESSAGES[NOT_CONNECTED], updated_at=now)
            )
            return 0
        queue = self.queue()
        if queue is None:  # no job could take them: they stay closed (the owner retries them)
            return 0
        result = await conn.execute(
            update(ads_uploads)
            .where(closed)
            .values(status=PENDING, reason=None, message=None, next_attempt_at=now, updated_at=now)
        )
        reopened = int(result.rowcount or 0)
        if reopened:
            await ensure_flush(conn, scope, queue, now=now.timestamp())
        return reopened

    async def deleted_sites(
        self, actor: Actor, *, limit: int = DEFAULT_PAGE, cursor: str | None = None
    ) -> dict[str, Any]:
        """Deleted sites not purged yet, the latest deletion first: every one for an admin,
        those the person owns for a person."""
        query = select(sites).where(sites.c.deleted_at.is_not(None))
        role: Role = "admin"
        if actor.kind == "person":
            role = "owner"
            owned = and_(
                site_members.c.site_id == sites.c.id,
                site_members.c.person_id == int(actor.id),
                site_members.c.role == "owner",
            )
            # One person's sites across tenants: deliberately not one site's rows.
            query = query.join(site_members, owned).execution_options(**ALL_SITES)
        async with self.db.connect() as conn:
            page = await _page(conn, query, sites.c.deleted_at, sites.c.id, limit, cursor)
        items = [
            {**site_out(site_from_row(row), role), **self._trashed(row.deleted_at)}
            for row in page.rows
        ]
        return {"items": items, "next_cursor": page.next_cursor}

    # --- intents -------------------------------------------------------------------------
    async def delete_intent(self, actor: Actor, site_id: int, intent_id: int) -> dict[str, Any]:
        """Delete a live intent of the site (editors, owners, admins)."""
        now = self._now()
        async with self.db.begin() as conn:
            _site, scope = await scope_for(conn, actor, site_id)
            require_edit(scope)
            row = await _intent(conn, scope, intent_id)
            if row is None or row.deleted_at is not None:
                raise NotFound("no such intent")
            result = await conn.execute(
                update(track_intents)
                .where(
                    where_site(track_intents, scope),
                    track_intents.c.id == intent_id,
                    track_intents.c.deleted_at.is_(None),
                )
                .values(deleted_at=now)
            )
            if result.rowcount != 1:
                raise NotFound("no such intent")
            trashed = self._trashed(now)
            await record_audit(
                conn,
                actor=scope.actor,
                action="intent.deleted",
                subject=f"site:{scope.site_id}",
                details={
                    "site_id": scope.site_id,
                    "intent": intent_id,
                    "status": row.status,
                    "restorable_until": trashed["restorable_until"].isoformat(),
                },
                ts=now,
            )
            found = (await conn.execute(_deleted_query(scope, intent_id))).one()
        await self.intents_changed(scope.site_id)
        return self._intent_out(found)

    async def restore_intent(self, actor: Actor, site_id: int, intent_id: int) -> dict[str, Any]:
        """Bring a deleted intent back within its period (owners, admins), as it was; its
        conversion, if one waits for Google Ads, is uploaded again."""
        now = self._now()
        async with self.db.begin() as conn:
            _site, scope = await scope_for(conn, actor, site_id)
            require_manage(scope)
            row = await _intent(conn, scope, intent_id)
            if row is None:
                raise NotFound("no such intent")
            if row.deleted_at is None:
                raise not_deleted("intent")
            check_restorable(row.deleted_at, now, self.retention_days)
            result = await conn.execute(
                update(track_intents)
                .where(
                    where_site(track_intents, scope),
                    track_intents.c.id == intent_id,
                    track_intents.c.deleted_at == row.deleted_at,
                )
                .values(deleted_at=None)
            )
            if result.rowcount != 1:
                raise ApiError(409, "intent_changed", "the intent changed meanwhile; read it again")
            upload = await get_upload(conn, scope, intent_id)
            queue = self.queue()
            if upload is not None and upload.status == PENDING and queue is not None:
                # Its site's job may have gone while it was deleted (nothing else was pending).
                await ensure_flush(conn, scope, queue, now=now.timestamp())
            await record_audit(
                conn,
                actor=scope.actor,
                action="intent.restored",
                subject=f"site:{scope.site_id}",
                details={
                    "site_id": scope.site_id,
                    "intent": intent_id,
                    "deleted_at": row.deleted_at.isoformat(),
                },
                ts=now,
            )
            answer = await one_intent(conn, scope, intent_id)
        await self.intents_changed(scope.site_id)
        return answer

    async def deleted_intents(
        self, actor: Actor, site_id: int, *, limit: int = DEFAULT_PAGE, cursor: str | None = None
    ) -> dict[str, Any]:
        """The site's trash: its deleted intents not purged yet, the latest deletion first
        (owners, admins)."""
        i = track_intents.c
        async with self.db.connect() as conn:
            _site, scope = await scope_for(conn, actor, site_id)
            require_manage(scope)
            page = await _page(conn, _deleted_query(scope), i.deleted_at, i.id, limit, cursor)
        return {
            "items": [self._intent_out(row) for row in page.rows],
            "next_cursor": page.next_cursor,
        }

    def _intent_out(self, row: Any) -> dict[str, Any]:
        trashed = self._trashed(row.deleted_at)
        return {
            **intent_json(row),
            "deleted_at": trashed["deleted_at"].isoformat(),
            "restorable_until": trashed["restorable_until"].isoformat(),
        }


async def _own_site(conn: AsyncConnection, actor: Actor, site_id: int) -> tuple[Site, Role]:
    """The site, deleted or not, with the caller's role, for a restore: an admin, or an owner.
    A live site answers as ``scope_for`` does (403 for its editors and viewers); a deleted one
    is 404 to anyone else, like a site that does not exist."""
    site = await get_site(conn, site_id, include_deleted=True)
    if site is None:
        raise NotFound("no such site")
    if site.deleted_at is None:
        live, scope = await scope_for(conn, actor, site_id)
        require_manage(scope)
        return live, scope.role
    if actor.kind == "admin":
        return site, "admin"
    role = (
        await conn.execute(
            select(site_members.c.role).where(
                site_members.c.site_id == site_id, site_members.c.person_id == int(actor.id)
            )
        )
    ).scalar_one_or_none()
    if role != "owner":
        raise NotFound("no such site")
    return site, "owner"


async def _intent(conn: AsyncConnection, scope: SiteScope, intent_id: int) -> Any:
    query = select(track_intents).where(
        where_site(track_intents, scope), track_intents.c.id == intent_id
    )
    return (await conn.execute(query)).first()


def _deleted_query(scope: SiteScope, intent_id: int | None = None) -> Select[Any]:
    """Deleted intents with their sessions' attribution, as the ledger shows intents."""
    i, s = track_intents.c, track_sessions.c
    query = (
        select(track_intents, *(s[name].label(f"sess_{name}") for name in SESSION_FIELDS))
        .select_from(intents_with_sessions())
        .where(where_site(track_intents, scope), i.deleted_at.is_not(None))
    )
    return query if intent_id is None else query.where(i.id == intent_id)


@dataclass(frozen=True, slots=True)
class _Page:
    rows: list[Any]
    next_cursor: str | None


async def _page(
    conn: AsyncConnection,
    query: Select[Any],
    deleted_at: Any,
    key: Any,
    limit: int,
    cursor: str | None,
) -> _Page:
    """A keyset page over ``(deleted_at, id)``, newest first (the ledger's cursor form)."""
    if cursor:
        at, last_id = decode_cursor(cursor)
        tie = key < last_id if last_id <= MAX_ID else true()
        query = query.where(or_(deleted_at < at, and_(deleted_at == at, tie)))
    query = query.order_by(deleted_at.desc(), key.desc()).limit(limit + 1)
    rows = list(await conn.execute(query))
    page = rows[:limit]
    more = len(rows) > limit
    last = page[-1] if page else None
    next_cursor = encode_cursor(last.deleted_at, int(last.id)) if more and last else None
    return _Page(page, next_cursor)
