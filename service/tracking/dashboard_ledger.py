"""The intent ledger: a site's intents, newest first, each with its session's attribution.

Pages are keyset pages over ``(created_at, id)``: the cursor names the last intent shown and the
next page continues strictly after it, so intents inserted meanwhile neither repeat nor push
others off a page. The cursor is opaque to clients: ``<microseconds>:<id>`` in unpadded
base64url, the form (and exact pattern) of the CRM's cursors.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Select, and_, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from core.errors import NotFound
from service.db.tables.tracking import track_intents, track_sessions
from service.errors import ApiError
from service.tracking.dashboard_metrics import intent_has_click, intents_with_sessions, money
from service.tracking.scope import SiteScope, where_site
from service.whatsapp import cursor as crm_cursor

IntentStatus = Literal["pending", "confirmed", "junk", "cancelled"]
IntentKind = Literal["phone", "whatsapp"]
DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_ID = 2**63 - 1
CURSOR_PATTERN = crm_cursor.PATTERN
CURSOR_MAX_LENGTH = crm_cursor.MAX_LENGTH
_CURSOR = re.compile(CURSOR_PATTERN)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_LATEST = datetime.max.replace(tzinfo=UTC)

#: The session columns each intent shows (its attribution), labelled ``sess_<column>``.
SESSION_FIELDS = (
    "id",
    "started_at",
    "landing_page",
    "referrer",
    "source",
    "medium",
    "campaign",
    "term",
    "content",
    "gclid",
    "wbraid",
    "gbraid",
    "device",
    "country",
)


def encode_cursor(created_at: datetime, intent_id: int) -> str:
    # Exact integer microseconds: a float timestamp could be off by one and skip a tie.
    micros = (created_at - _EPOCH) // _MICROSECOND
    return base64.urlsafe_b64encode(f"{micros}:{intent_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The ``(created_at, id)`` a page continues after; anything but a cursor is a 400."""
    if len(cursor) > CURSOR_MAX_LENGTH or _CURSOR.fullmatch(cursor) is None:
        raise ApiError(400, "invalid_cursor", "the cursor is not one this API issued")
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    micros, intent_id = raw.split(":")
    try:
        at = _EPOCH + int(micros) * _MICROSECOND
    except OverflowError:
        at = _LATEST
    return at, int(intent_id)


@dataclass(frozen=True, slots=True)
class LedgerFilter:
    status: IntentStatus | None = None
    kind: IntentKind | None = None
    ads_only: bool = False
    start: datetime | None = None
    end: datetime | None = None


def _query(scope: SiteScope) -> Select[Any]:
    i, s = track_intents.c, track_sessions.c
    return (
        select(
            track_intents,
            *(s[name].label(f"sess_{name}") for name in SESSION_FIELDS),
        )
        .select_from(intents_with_sessions())
        .where(where_site(track_intents, scope), i.deleted_at.is_(None))
    )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def intent_json(row: Any) -> dict[str, Any]:
    session = None
    if row.sess_id is not None:  # an intent without a session, or one retention removed
        session = {name: getattr(row, f"sess_{name}") for name in SESSION_FIELDS}
        session["started_at"] = _iso(row.sess_started_at)
    return {
        "id": row.id,
        "session_id": row.session_id,
        "kind": row.kind,
        "target": row.target,
        "status": row.status,
        "lead_score": row.lead_score,
        "ref_code": row.ref_code,
        "click_ids": {"gclid": row.gclid, "wbraid": row.wbraid, "gbraid": row.gbraid},
        "amount": None if row.amount is None else str(money(row.amount)),
        "currency": row.currency,
        "sealed_at": _iso(row.sealed_at),
        "sealed_by": row.sealed_by,
        "conversation_id": row.conversation_id,
        "call_number": row.call_number,
        "call_at": _iso(row.call_at),
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "session": session,
    }


async def ledger_page(
    conn: AsyncConnection,
    scope: SiteScope,
    flt: LedgerFilter,
    *,
    limit: int = DEFAULT_PAGE,
    cursor: str | None = None,
) -> dict[str, Any]:
    i = track_intents.c
    query = _query(scope)
    if flt.status is not None:
        query = query.where(i.status == flt.status)
    if flt.kind is not None:
        query = query.where(i.kind == flt.kind)
    if flt.ads_only:
        query = query.where(intent_has_click())
    if flt.start is not None:
        query = query.where(i.created_at >= flt.start)
    if flt.end is not None:
        query = query.where(i.created_at < flt.end)
    if cursor:
        at, last_id = decode_cursor(cursor)
        tie = i.id < last_id if last_id <= MAX_ID else true()
        query = query.where(or_(i.created_at < at, and_(i.created_at == at, tie)))
    query = query.order_by(i.created_at.desc(), i.id.desc()).limit(limit + 1)
    rows = list(await conn.execute(query))
    page = rows[:limit]
    more = len(rows) > limit
    return {
        "items": [intent_json(row) for row in page],
        "next_cursor": encode_cursor(page[-1].created_at, page[-1].id) if more else None,
    }


async def one_intent(conn: AsyncConnection, scope: SiteScope, intent_id: int) -> dict[str, Any]:
    row = (await conn.execute(_query(scope).where(track_intents.c.id == intent_id))).first()
    if row is None:
        raise NotFound("no such intent")
    return intent_json(row)
