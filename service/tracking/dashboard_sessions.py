"""One session as its site's owner sees it: attribution, events in order, and its intents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.errors import NotFound
from service.db.tables.tracking import track_events, track_intents, track_sessions
from service.tracking.scope import SiteScope, where_site

#: Events shown of one session; a longer one says ``events_truncated``.
MAX_EVENTS = 1000


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


async def session_timeline(
    conn: AsyncConnection, scope: SiteScope, session_id: int, *, limit: int = MAX_EVENTS
) -> dict[str, Any]:
    s, e, i = track_sessions.c, track_events.c, track_intents.c
    session = (
        await conn.execute(
            select(track_sessions).where(where_site(track_sessions, scope), s.id == session_id)
        )
    ).first()
    if session is None:
        raise NotFound("no such session")
    events = list(
        await conn.execute(
            select(e.id, e.event_id, e.kind, e.name, e.path, e.occurred_at, e.received_at, e.props)
            .where(where_site(track_events, scope), e.session_id == session_id)
            .order_by(e.occurred_at, e.id)
            .limit(limit + 1)
        )
    )
    intents = await conn.execute(
        select(i.id, i.kind, i.target, i.status, i.created_at)
        .where(where_site(track_intents, scope), i.session_id == session_id, i.deleted_at.is_(None))
        .order_by(i.created_at, i.id)
    )
    return {
        "id": session.id,
        "visitor_id": session.visitor_id,
        "started_at": _iso(session.started_at),
        "last_seen_at": _iso(session.last_seen_at),
        "page_views": session.page_views,
        "events_count": session.events,
        "landing_page": session.landing_page,
        "referrer": session.referrer,
        "source": session.source,
        "medium": session.medium,
        "campaign": session.campaign,
        "term": session.term,
        "content": session.content,
        "click_ids": {"gclid": session.gclid, "wbraid": session.wbraid, "gbraid": session.gbraid},
        "device": session.device,
        "country": session.country,
        "events": [
            {
                "id": ev.id,
                "event_id": ev.event_id,
                "kind": ev.kind,
                "name": ev.name,
                "path": ev.path,
                "occurred_at": _iso(ev.occurred_at),
                "received_at": _iso(ev.received_at),
                "props": ev.props,
            }
            for ev in events[:limit]
        ],
        "events_truncated": len(events) > limit,
        "intents": [
            {
                "id": it.id,
                "kind": it.kind,
                "target": it.target,
                "status": it.status,
                "created_at": _iso(it.created_at),
            }
            for it in intents
        ],
    }
