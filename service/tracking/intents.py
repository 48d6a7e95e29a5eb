"""Phone and WhatsApp clicks as intents: the ledger a site owner works through.

An intent's stamp is the click's event id (unique per site), so a resent click is one intent.
Its click ids are the session's (one kept, see ``core.tracking.attribution``), its lead score
comes from the session's signals at the click (``core.tracking.score``), and a WhatsApp intent
keeps the reference code the script put in the message, by which the conversation is linked
when it arrives. Codes are made by the script and unique across all sites: a code already taken
(another site's, or a reused one) cannot link this intent, so it is stored without one and the
event's result says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from core.tracking.score import lead_score
from core.tracking.sessions import Placed
from service.db.tables.tracking import track_intents
from service.db.types import from_timestamp
from service.tracking.scope import SiteScope, site_values

PENDING = "pending"
STATUSES = ("pending", "confirmed", "junk", "cancelled")


def intent_row(
    scope: SiteScope, placed: Placed, weights: Mapping[str, int], now: datetime
) -> dict[str, Any]:
    event, session = placed.event, placed.session
    assert event.intent is not None and placed.signals is not None
    click = session.attribution.click
    return site_values(
        scope,
        session_id=session.id,
        kind=event.intent.kind,
        target=event.intent.target,
        stamp=event.id,
        ref_code=event.intent.ref,
        gclid=click.value if click and click.kind == "gclid" else None,
        wbraid=click.value if click and click.kind == "wbraid" else None,
        gbraid=click.value if click and click.kind == "gbraid" else None,
        status=PENDING,
        lead_score=lead_score(placed.signals, weights),
        created_at=from_timestamp(event.ts),
        updated_at=now,
    )


async def _insert_ignoring(
    conn: AsyncConnection, dialect: str, rows: Sequence[dict[str, Any]]
) -> set[str]:
    """Insert, skipping rows that clash on a unique key; the stamps that landed."""
    if not rows:
        return set()
    column = track_intents.c.stamp
    if dialect == "sqlite":
        stmt = sqlite_insert(track_intents).on_conflict_do_nothing().returning(column)
    else:
        stmt = mysql_insert(track_intents).prefix_with("IGNORE").returning(column)
    result = await conn.execute(stmt, list(rows))
    return {row[0] for row in result}


@dataclass(frozen=True, slots=True)
class Recorded:
    #: Intents made (a stamp that already was one is not made again, and not counted).
    created: int
    #: The stamps whose reference code was taken.
    ref_taken: set[str]


async def record(
    conn: AsyncConnection,
    dialect: str,
    scope: SiteScope,
    placed: Sequence[Placed],
    weights: Mapping[str, int],
    now: datetime,
) -> Recorded:
    """Store the intents of ``placed`` clicks: how many were made, and the stamps whose
    reference code was taken.

    A stamp that is already an intent (a click resent after its dedup row expired) stays the
    one intent it is.
    """
    if not placed:
        return Recorded(0, set())
    rows = [intent_row(scope, p, weights, now) for p in placed]
    landed = await _insert_ignoring(conn, dialect, rows)
    retry = [dict(r, ref_code=None) for r in rows if r["stamp"] not in landed and r["ref_code"]]
    if not retry:
        return Recorded(len(landed), set())
    # The clash was the code (unique across sites) or the stamp; without the code only a
    # stamp clash remains, and such a row was stored before.
    taken = await _insert_ignoring(conn, dialect, retry)
    return Recorded(len(landed) + len(taken), taken)
