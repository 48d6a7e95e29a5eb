"""Shared ground of the ingest tests: an app on a manual clock with one site, batches in the
wire format, and reads of what was stored."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import select

from core.clock import ManualClock
from service.db import Database
from service.db.tables.tracking import (
    track_event_ids,
    track_events,
    track_intents,
    track_sessions,
    track_usage,
)
from service.settings import Settings
from service.tracking.access import script_scope
from service.tracking.ingest import TrackingIngest
from service.tracking.scope import where_site
from service.tracking.sites import Site, create_site
from tests.conftest import running_client

#: 2026-12-01 12:00:00 UTC.
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp()
ORIGIN = "https://example.com"
USER_AGENT = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148 Safari/604.1"
VISITOR = "v_visitor0000000000001"
_ids = itertools.count(1)


def event_id() -> str:
    return f"ev-{next(_ids):08d}"


def page_view(ts: float, url: str = "https://example.com/", **extra: Any) -> dict[str, Any]:
    return {"id": event_id(), "type": "page_view", "ts": ts * 1000, "url": url, **extra}


def click(ts: float, name: str = "cta", url: str = "https://example.com/") -> dict[str, Any]:
    return {"id": event_id(), "type": "click", "ts": ts * 1000, "url": url, "name": name}


def intent(
    ts: float, kind: str, target: str, ref: str | None = None, url: str = "https://example.com/"
) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": kind, "target": target}
    if ref is not None:
        body["ref"] = ref
    return {"id": event_id(), "type": "intent", "ts": ts * 1000, "url": url, "intent": body}


def batch(site: Site, events: list[Any], *, sent_at: float | None = None, **extra: Any) -> Any:
    body: dict[str, Any] = {
        "site": site.public_key,
        "visitor": VISITOR,
        "events": events,
        "context": {"url": "https://example.com/", "user_agent_hint": "mobile"},
    }
    if sent_at is not None:
        body["sent_at"] = sent_at * 1000
    body.update(extra)
    return body


@dataclass
class Harness:
    client: httpx.AsyncClient
    clock: ManualClock
    site: Site
    db: Database
    settings: Settings

    async def send(
        self,
        body: Any,
        *,
        origin: str | None = ORIGIN,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = {"User-Agent": USER_AGENT, **(headers or {})}
        if origin is not None:
            sent["Origin"] = origin
        return await self.client.post("/t/sync", json=body, headers=sent)

    @property
    def ingest(self) -> TrackingIngest:
        app: Any = self.client.app  # type: ignore[attr-defined]
        ingest: TrackingIngest = app.state.runtime.facility(TrackingIngest)
        return ingest

    async def rows(self, table: Any, *order: Any, site: Site | None = None) -> list[Any]:
        scope = script_scope(site or self.site)
        query = select(table).where(where_site(table, scope))
        if order:
            query = query.order_by(*order)
        async with self.db.connect() as conn:
            return list((await conn.execute(query)).all())

    async def events(self) -> list[Any]:
        return await self.rows(track_events, track_events.c.occurred_at, track_events.c.id)

    async def event_ids(self) -> list[Any]:
        return await self.rows(track_event_ids, track_event_ids.c.event_id)

    async def sessions(self) -> list[Any]:
        return await self.rows(track_sessions, track_sessions.c.started_at, track_sessions.c.id)

    async def intents(self) -> list[Any]:
        return await self.rows(track_intents, track_intents.c.id)

    async def usage(self) -> list[Any]:
        return await self.rows(track_usage)

    async def rows_of(self, site: Site) -> list[Any]:
        """Another site's intents."""
        return await self.rows(track_intents, track_intents.c.id, site=site)


async def new_site(
    db: Database, *, domains: list[str] | None = None, config: dict[str, Any] | None = None
) -> Site:
    async with db.begin() as conn:
        return await create_site(
            conn,
            name="Örnek",
            domains=domains or ["example.com", "www.example.com", "localhost:8080"],
            currency="TRY",
            time_zone="Europe/Istanbul",
            now=datetime.fromtimestamp(NOW, UTC),
            config=config,
        )


@asynccontextmanager
async def harness(
    make_settings: Callable[..., Settings],
    database_url: str,
    *,
    config: dict[str, Any] | None = None,
    **overrides: Any,
) -> AsyncIterator[Harness]:
    settings = make_settings(database_url=database_url, **overrides)
    clock = ManualClock(NOW)
    db = Database(database_url)
    try:
        async with running_client(settings, clock=clock) as client:
            site = await new_site(db, config=config)
            yield Harness(client, clock, site, db, settings)
    finally:
        await db.dispose()
