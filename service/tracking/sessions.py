"""Storing the sessions a batch's events were placed in (``core.tracking.sessions``).

The visitor's latest session is read (with whether an earlier one exists: ``returning``), new
sessions are inserted in one statement and a continued one is updated by increments, so two
batches of one visitor in flight at once add up instead of overwriting each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.tracking.attribution import CLICK_ID_KINDS, Attribution, ClickId
from core.tracking.sessions import SessionDraft
from service.db.tables.tracking import track_sessions
from service.db.types import from_timestamp
from service.tracking.scope import SiteScope, site_values, where_site

_T = track_sessions


@dataclass(frozen=True, slots=True)
class Visit:
    """What the request says about the visit, the same for every session of the batch."""

    visitor: str
    device: str
    country: str | None
    consent_subject: str | None


def _attribution(row: Any) -> Attribution:
    click = next(
        (ClickId(kind, getattr(row, kind)) for kind in CLICK_ID_KINDS if getattr(row, kind)),
        None,
    )
    return Attribution(
        source=row.source or "(direct)",
        medium=row.medium or "(none)",
        campaign=row.campaign,
        term=row.term,
        content=row.content,
        click=click,
        referrer=row.referrer,
    )


_COLUMNS = (
    _T.c.id,
    _T.c.visitor_id,
    _T.c.started_at,
    _T.c.last_seen_at,
    _T.c.page_views,
    _T.c.events,
    _T.c.landing_page,
    _T.c.referrer,
    _T.c.source,
    _T.c.medium,
    _T.c.campaign,
    _T.c.term,
    _T.c.content,
    _T.c.gclid,
    _T.c.wbraid,
    _T.c.gbraid,
)


def _draft(row: Any, returning: bool) -> SessionDraft:
    return SessionDraft(
        id=int(row.id),
        started_at=row.started_at.timestamp(),
        last_seen_at=row.last_seen_at.timestamp(),
        page_views=int(row.page_views),
        events=int(row.events),
        attribution=_attribution(row),
        landing_path=row.landing_page,
        returning=returning,
        stored=True,
    )


async def load_latest(conn: AsyncConnection, scope: SiteScope, visitor: str) -> SessionDraft | None:
    """The visitor's latest session, ``returning`` when it has an earlier one."""
    rows = (
        await conn.execute(
            select(*_COLUMNS)
            .where(where_site(_T, scope), _T.c.visitor_id == visitor)
            .order_by(_T.c.last_seen_at.desc())
            .limit(2)
        )
    ).all()
    return _draft(rows[0], len(rows) > 1) if rows else None


#: Visitors per IN (...) list.
_IN_CHUNK = 500


async def load_recent(
    conn: AsyncConnection, scope: SiteScope, visitors: Sequence[str], since: datetime
) -> dict[str, SessionDraft]:
    """Each visitor's latest session seen since ``since``, in one query per 500 visitors.

    A session last seen before ``since`` cannot be continued by the events at hand (they come
    later than the session timeout after it), so the visitors without one start a new session
    either way. ``returning`` is not known here and left false: the caller loads a visitor
    whose batch holds an intent (its lead score needs it) with ``load_latest``.
    """
    found: dict[str, SessionDraft] = {}
    ordered = sorted(set(visitors))
    for start in range(0, len(ordered), _IN_CHUNK):
        rows = await conn.execute(
            select(*_COLUMNS)
            .where(
                where_site(_T, scope),
                _T.c.visitor_id.in_(ordered[start : start + _IN_CHUNK]),
                _T.c.last_seen_at >= since,
            )
            .order_by(_T.c.visitor_id, _T.c.last_seen_at.desc())
        )
        for row in rows:
            found.setdefault(row.visitor_id, _draft(row, False))
    return found


def _new_row(scope: SiteScope, draft: SessionDraft, visit: Visit) -> dict[str, Any]:
    a = draft.attribution
    click = a.click
    return site_values(
        scope,
        visitor_id=visit.visitor,
        started_at=from_timestamp(draft.started_at),
        last_seen_at=from_timestamp(draft.last_seen_at),
        page_views=draft.page_views,
        events=draft.events,
        landing_page=draft.landing_path,
        referrer=a.referrer,
        source=a.source,
        medium=a.medium,
        campaign=a.campaign,
        term=a.term,
        content=a.content,
        gclid=click.value if click and click.kind == "gclid" else None,
        wbraid=click.value if click and click.kind == "wbraid" else None,
        gbraid=click.value if click and click.kind == "gbraid" else None,
        device=visit.device,
        country=visit.country,
        consent_subject=visit.consent_subject,
    )


async def save(
    conn: AsyncConnection, scope: SiteScope, drafts: Sequence[tuple[SessionDraft, Visit]]
) -> None:
    """Insert the new drafts (their ids are set) and add the batch to the stored ones (in id
    order, so that two transactions touching the same sessions lock them in one order)."""
    new = [(d, v) for d, v in drafts if not d.stored]
    if new:
        result = await conn.execute(
            insert(_T).returning(_T.c.id, sort_by_parameter_order=True),
            [_new_row(scope, d, v) for d, v in new],
        )
        for (draft, _visit), row in zip(new, result.all(), strict=True):
            draft.id = int(row[0])
    stored = sorted(
        ((d, v) for d, v in drafts if d.stored and d.added_events), key=lambda dv: dv[0].id or 0
    )
    if stored:
        seen = bindparam("b_seen", type_=_T.c.last_seen_at.type)
        await conn.execute(
            update(_T)
            .where(where_site(_T, scope), _T.c.id == bindparam("b_id"))
            .values(
                last_seen_at=case((_T.c.last_seen_at < seen, seen), else_=_T.c.last_seen_at),
                page_views=_T.c.page_views + bindparam("b_views"),
                events=_T.c.events + bindparam("b_events"),
                # Consent given during the session names its subject from then on.
                consent_subject=func.coalesce(
                    bindparam("b_subject", type_=_T.c.consent_subject.type),
                    _T.c.consent_subject,
                ),
            ),
            [
                {
                    "b_id": d.id,
                    "b_seen": from_timestamp(d.last_seen_at),
                    "b_views": d.added_page_views,
                    "b_events": d.added_events,
                    "b_subject": v.consent_subject,
                }
                for d, v in stored
            ],
        )
