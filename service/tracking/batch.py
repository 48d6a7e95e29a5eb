"""Writing batches' events: dedup rows, sessions, events, intents and the month's usage.

Four paths, all in one transaction each (the caller's), so an event is stored with its dedup
row or not at all:

- **group**: the batches that arrived while the previous transaction was being written, in
  one transaction: every statement multi-row across them, one round trip per table (the
  visitors' latest sessions in one query per site; a visitor whose batch holds an intent on
  its own, for the lead score's "returning"), the usage added last under its limit
  (``service.tracking.quota``), one commit. Taken by nearly every batch under load.
- **fast**: the same for one batch.
- **exact**: the usage row locked first and the room read, so a batch that would cross the
  monthly event quota stores what fits and refuses the rest (``quota_exceeded``), and one
  that would cross the intent quota stores its clicks as events but makes intents only of
  those that fit (the others are accepted with ``intent_quota_exceeded``); also the month's
  first batch of a site (its usage row does not exist yet).

A site whose intent quota this process saw used up skips the exact path: its clicks are
stored without intents on the fast paths. After the usage add, the batch raises and sends the
quota warnings its counts reached, in its transaction (``service.tracking.quota_warning``).
- **one by one**: when a statement of the fast path fails for a reason other than a lock
  conflict, each event is written again alone inside a savepoint: an event that cannot be
  stored is rejected (``storage_failed``) and its neighbours are kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from core.tracking.attribution import Attribution, click_id
from core.tracking.events import Event
from core.tracking.sessions import Placed, SessionDraft, place_events
from service.db.conflicts import is_lock_conflict
from service.db.tables.tracking import track_events
from service.db.types import from_timestamp
from service.tracking import dedup, intents, quota, sessions
from service.tracking.quota import Counts, Limits
from service.tracking.quota_warning import QuotaWarner, Warned
from service.tracking.scope import SiteScope, site_values


class NeedsExactQuota(Exception):
    """The fast path's conditional usage add failed: write the batch on the exact path."""


class QuotaFull(Exception):
    """The month's quota was used up before this batch."""

    def __init__(self, used: int) -> None:
        super().__init__("monthly event quota used up")
        self.used = used


@dataclass(frozen=True, slots=True)
class BatchContext:
    scope: SiteScope
    visit: sessions.Visit
    #: The site's hosts (internal referrers are no source).
    hosts: frozenset[str]
    #: Attribution of the script's landing page, for sessions whose first page names none.
    fallback: Attribution
    timeout_seconds: float
    weights: Mapping[str, int]
    month: str
    #: The month's event limit.
    limit: int
    now: datetime
    intent_limit: int = quota.MAX_LIMIT
    #: This process saw the month's intents used up (at ``intent_limit``): make none.
    intents_full: bool = False
    warner: QuotaWarner | None = None

    @property
    def limits(self) -> Limits:
        return Limits(self.limit, self.intent_limit)


@dataclass(slots=True)
class Written:
    placed: list[Placed] = field(default_factory=list)
    over_quota: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)
    ref_taken: set[str] = field(default_factory=set)
    #: Clicks stored as events without an intent: the month's intents were used up.
    intent_refused: set[str] = field(default_factory=set)
    #: Intents made.
    intents_added: int = 0
    #: The month's event count after this batch (``None``: the batch stored nothing).
    used: int | None = None
    #: The month's intent count after this batch (``None``: not read back).
    intents_used: int | None = None
    #: Quota warnings this batch's transaction raised.
    warned: list[Warned] = field(default_factory=list)

    def merge(self, other: Written) -> None:
        self.placed += other.placed
        self.over_quota |= other.over_quota
        self.failed.update(other.failed)
        self.ref_taken |= other.ref_taken
        self.intent_refused |= other.intent_refused
        self.intents_added += other.intents_added
        if other.used is not None:
            self.used = other.used
        if other.intents_used is not None:
            self.intents_used = other.intents_used
        self.warned += other.warned


def _click_note(url: str) -> dict[str, Any] | None:
    """Which click id a landing kept when its URL carried several (Google takes one)."""
    if "braid" not in url:
        return None
    try:
        found = click_id(parse_qs(urlsplit(url).query))
    except ValueError:
        return None
    if found is None or not found.dropped:
        return None
    return {"kept": found.kind, "dropped": list(found.dropped)}


def event_row(scope: SiteScope, placed: Placed, now: datetime) -> dict[str, Any]:
    event = placed.event
    props: dict[str, Any] | None = None
    if event.type == "page_view":
        note = _click_note(event.url)
        if event.title or note:
            props = {"title": event.title} if event.title else {}
            if note:
                props["click_ids"] = note
    elif event.type == "custom":
        props = event.props
    elif event.intent is not None:
        props = {"target": event.intent.target}
        if event.intent.ref:
            props["ref"] = event.intent.ref
    return site_values(
        scope,
        session_id=placed.session.id,
        event_id=event.id,
        kind=event.type,
        name=event.name,
        path=event.path,
        occurred_at=from_timestamp(event.ts),
        received_at=now,
        props=props,
    )


def _sessions_of(
    placed: Sequence[Placed], visit: sessions.Visit
) -> list[tuple[SessionDraft, sessions.Visit]]:
    seen: dict[int, tuple[SessionDraft, sessions.Visit]] = {}
    for p in placed:
        seen.setdefault(id(p.session), (p.session, visit))
    return list(seen.values())


def _place(ctx: BatchContext, fresh: Sequence[Event], latest: SessionDraft | None) -> list[Placed]:
    return place_events(
        fresh,
        latest,
        timeout_seconds=ctx.timeout_seconds,
        hosts=ctx.hosts,
        fallback=ctx.fallback,
    )


def _split_clicks(clicks: list[Placed], room: int | None, written: Written) -> list[Placed]:
    """The clicks that may make intents (the first ``room``; ``None``: all); the others are
    refused theirs."""
    if room is None or len(clicks) <= room:
        return clicks
    kept, refused = clicks[: max(room, 0)], clicks[max(room, 0) :]
    written.intent_refused |= {p.event.id for p in refused}
    return kept


async def _warn(conn: AsyncConnection, ctx: BatchContext, counts: Counts, written: Written) -> None:
    if ctx.warner is not None:
        written.warned += await ctx.warner.check(conn, ctx.scope, ctx.month, counts, ctx.limits)


async def write_events(
    conn: AsyncConnection,
    dialect: str,
    ctx: BatchContext,
    events: Sequence[Event],
    *,
    room: int | None,
    intent_room: int | None = None,
) -> Written:
    """Store the events not seen before; ``room`` and ``intent_room`` (exact path: the usage
    row is locked; the caller adds it and warns) cap how many events and intents, ``None``
    (fast path) adds the usage under its limits or raises NeedsExactQuota."""
    scope = ctx.scope
    landed = await dedup.claim(conn, dialect, scope, (e.id for e in events), ctx.now)
    fresh = [e for e in events if e.id in landed]
    written = Written()
    if room is not None and len(fresh) > room:
        fresh, over = fresh[: max(room, 0)], fresh[max(room, 0) :]
        written.over_quota = {e.id for e in over}
        await dedup.release(conn, scope, written.over_quota)
    if not fresh:
        return written
    latest = await sessions.load_latest(conn, scope, ctx.visit.visitor)
    placed = _place(ctx, fresh, latest)
    await sessions.save(conn, scope, _sessions_of(placed, ctx.visit))
    await conn.execute(insert(track_events), [event_row(scope, p, ctx.now) for p in placed])
    clicks = [p for p in placed if p.event.intent is not None]
    if room is None and ctx.intents_full:
        intent_room = 0
    allowed = _split_clicks(clicks, intent_room, written)
    if allowed:
        recorded = await intents.record(conn, dialect, scope, allowed, ctx.weights, ctx.now)
        written.ref_taken = recorded.ref_taken
        written.intents_added = recorded.created
    written.placed = placed
    if room is None:
        counts = await quota.add_within(
            conn, dialect, scope, ctx.month, len(placed), written.intents_added, ctx.limits
        )
        if counts is None:
            raise NeedsExactQuota
        written.used, written.intents_used = counts.events, counts.intents
        await _warn(conn, ctx, counts, written)
    else:
        await quota.add(conn, scope, ctx.month, len(placed), written.intents_added)
    return written


async def write_exact(
    conn: AsyncConnection, dialect: str, ctx: BatchContext, events: Sequence[Event]
) -> Written:
    before = await quota.lock(conn, dialect, ctx.scope, ctx.month)
    if before.events >= ctx.limit:
        raise QuotaFull(before.events)
    assert before.intents is not None
    written = await write_events(
        conn,
        dialect,
        ctx,
        events,
        room=ctx.limit - before.events,
        intent_room=ctx.intent_limit - before.intents,
    )
    written.used = before.events + len(written.placed)
    written.intents_used = before.intents + written.intents_added
    if written.placed:
        await _warn(conn, ctx, Counts(written.used, written.intents_used), written)
    return written


async def write_one_by_one(
    conn: AsyncConnection, dialect: str, ctx: BatchContext, events: Sequence[Event]
) -> Written:
    """Each event alone in a savepoint; one that fails is rejected, the others kept.

    The usage row is locked first: it also opens the transaction on SQLite, whose driver
    would otherwise let the first savepoint's release commit on its own.
    """
    before = await quota.lock(conn, dialect, ctx.scope, ctx.month)
    if before.events >= ctx.limit:
        raise QuotaFull(before.events)
    used = before.events
    assert before.intents is not None
    made = before.intents
    written = Written(used=used, intents_used=made)
    for event in events:
        try:
            async with conn.begin_nested():
                alone = await write_events(
                    conn,
                    dialect,
                    ctx,
                    [event],
                    room=ctx.limit - used,
                    intent_room=ctx.intent_limit - made,
                )
        except SQLAlchemyError as error:
            if is_lock_conflict(error):
                raise  # InnoDB rolled the whole transaction back: the caller runs it again
            orig = getattr(error, "orig", None) or error
            written.failed[event.id] = f"the event could not be stored ({type(orig).__name__})"
            continue
        used += len(alone.placed)
        made += alone.intents_added
        alone.used, alone.intents_used = used, made
        written.merge(alone)
    if written.placed:
        await _warn(conn, ctx, Counts(used, made), written)
    return written


async def _recent_sessions(
    conn: AsyncConnection,
    batches: Sequence[tuple[BatchContext, Sequence[Event]]],
    fresh_of: Sequence[Sequence[Event]],
) -> dict[tuple[int, str], SessionDraft | None]:
    """The latest session of each visitor of the group: one query per site for those whose
    events could continue one, exactly (``returning`` too) for a visitor with an intent."""
    exact: dict[tuple[int, str], BatchContext] = {}
    for (ctx, _), fresh in zip(batches, fresh_of, strict=True):
        if any(e.intent is not None for e in fresh):
            exact[(ctx.scope.site_id, ctx.visit.visitor)] = ctx
    # Per site: a context, its other visitors, and since when a session could be continued.
    recent: dict[int, tuple[BatchContext, set[str], float]] = {}
    for (ctx, _), fresh in zip(batches, fresh_of, strict=True):
        site = ctx.scope.site_id
        if not fresh or (site, ctx.visit.visitor) in exact:
            continue
        since = min(e.ts for e in fresh) - ctx.timeout_seconds - 1.0
        held = recent.setdefault(site, (ctx, set(), since))
        held[1].add(ctx.visit.visitor)
        recent[site] = (held[0], held[1], min(held[2], since))
    latest: dict[tuple[int, str], SessionDraft | None] = {}
    for site in sorted(recent):
        ctx, visitors, since = recent[site]
        found = await sessions.load_recent(conn, ctx.scope, sorted(visitors), from_timestamp(since))
        for visitor in visitors:
            latest[(site, visitor)] = found.get(visitor)
    for key in sorted(exact):
        latest[key] = await sessions.load_latest(conn, exact[key].scope, key[1])
    return latest


async def write_group(
    conn: AsyncConnection, dialect: str, batches: Sequence[tuple[BatchContext, Sequence[Event]]]
) -> list[Written]:
    """Several batches (of one or more sites) on the fast path in one transaction: what each
    stored. An id twice in the group (two requests resending one batch) is stored by the first
    batch; a visitor's batches continue each other's sessions in order. A site whose usage
    add fails its limit (or has no row yet) raises NeedsExactQuota for the whole group."""
    now = batches[0][0].now
    landed = await dedup.claim_many(
        conn, dialect, [(ctx.scope, (e.id for e in events)) for ctx, events in batches], now
    )
    taken: set[tuple[int, str]] = set()
    fresh_of: list[list[Event]] = []
    for ctx, events in batches:
        fresh: list[Event] = []
        for event in events:
            key = (ctx.scope.site_id, event.id)
            if key in landed and key not in taken:
                taken.add(key)
                fresh.append(event)
        fresh_of.append(fresh)
    latest = await _recent_sessions(conn, batches, fresh_of)
    results: list[Written] = []
    # Per site: its sessions (with the visit that made them) and a context (scope, limits).
    drafts: dict[int, dict[int, tuple[SessionDraft, sessions.Visit]]] = {}
    scopes: dict[int, BatchContext] = {}
    for (ctx, _events), fresh in zip(batches, fresh_of, strict=True):
        site = ctx.scope.site_id
        written = Written()
        results.append(written)
        if not fresh:
            continue
        visitor = (site, ctx.visit.visitor)
        before = latest.get(visitor)
        written.placed = _place(ctx, fresh, before)
        last = max(written.placed, key=lambda p: p.session.last_seen_at).session
        latest[visitor] = (
            before if before is not None and before.last_seen_at > last.last_seen_at else last
        )
        site_drafts = drafts.setdefault(site, {})
        for placed in written.placed:
            site_drafts.setdefault(id(placed.session), (placed.session, ctx.visit))
        scopes.setdefault(site, ctx)
    for site in sorted(drafts):
        await sessions.save(conn, scopes[site].scope, list(drafts[site].values()))
    rows = [
        event_row(ctx.scope, placed, ctx.now)
        for (ctx, _), written in zip(batches, results, strict=True)
        for placed in written.placed
    ]
    if rows:
        await conn.execute(insert(track_events), rows)
    made: dict[int, intents.Recorded] = {}
    for site in sorted(scopes):
        ctx = scopes[site]
        clicks: list[Placed] = []
        for (c, _), written in zip(batches, results, strict=True):
            if c.scope.site_id != site:
                continue
            own = [p for p in written.placed if p.event.intent is not None]
            clicks += _split_clicks(own, 0 if c.intents_full else None, written)
        if clicks:
            made[site] = await intents.record(
                conn, dialect, ctx.scope, clicks, ctx.weights, ctx.now
            )
    for site in sorted(scopes):
        ctx = scopes[site]
        mine = [
            written
            for (c, _), written in zip(batches, results, strict=True)
            if c.scope.site_id == site
        ]
        added = sum(len(w.placed) for w in mine)
        recorded = made.get(site, intents.Recorded(0, set()))
        counts = await quota.add_within(
            conn, dialect, ctx.scope, ctx.month, added, recorded.created, ctx.limits
        )
        if counts is None:
            raise NeedsExactQuota
        for written in mine:
            written.used, written.intents_used = counts.events, counts.intents
            written.ref_taken = {p.event.id for p in written.placed} & recorded.ref_taken
        # The site's warnings ride on its first batch (counted once the group commits).
        await _warn(conn, ctx, counts, mine[0])
    return results
