"""May a sealed intent go to Google Ads, and if not, why (the reason the intent shows).

In this order: exactly one click id (``gclid``, ``gbraid`` or ``wbraid``; the ingest keeps one
per session, ``core.tracking.attribution``, so two here means the row came from elsewhere),
then the ads consent of the visitor's consent subject (the session's ``consent_subject``):
granted and unexpired (``core.consent.gate.has_consent``), then a connection of the site.
Consent is checked again when the conversion is uploaded: a withdrawal or an expiry in between
stops the upload too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.consent.gate import has_consent
from core.consent.model import ConsentState, purposes_from_json
from service.ads.wire import CLICK_KINDS
from service.db.tables.consent import consent_state
from service.db.tables.tracking import track_sessions
from service.tracking.scope import SiteScope, where_site

PURPOSE = "ads"
NO_CLICK_ID = "no_click_id"
SEVERAL_CLICK_IDS = "several_click_ids"
NO_CONSENT_SUBJECT = "no_consent_subject"
CONSENT_MISSING = "ads_consent_missing"
CONSENT_DENIED = "ads_consent_denied"
CONSENT_EXPIRED = "ads_consent_expired"
NOT_CONNECTED = "not_connected"
SITE_DELETED = "site_deleted"
#: What an owner reads for each reason (the intent's upload state).
MESSAGES = {
    NO_CLICK_ID: "The visit came without a Google Ads click id (gclid, gbraid or wbraid).",
    SEVERAL_CLICK_IDS: "The intent carries more than one click id; Google takes exactly one.",
    NO_CONSENT_SUBJECT: "The visitor's consent is not known (no consent subject on the session).",
    CONSENT_MISSING: "The visitor never answered the ads consent.",
    CONSENT_DENIED: "The visitor refused or withdrew the ads consent.",
    CONSENT_EXPIRED: "The visitor's ads consent has expired.",
    NOT_CONNECTED: "The site has no Google Ads connection.",
    SITE_DELETED: "The site was deleted.",
}


def click_of(intent: Any) -> tuple[str | None, str | None, str | None]:
    """The intent's one click id as ``(kind, value, reason)``; reason set when there is not
    exactly one."""
    present = [(kind, getattr(intent, kind)) for kind in CLICK_KINDS if getattr(intent, kind)]
    if not present:
        return None, None, NO_CLICK_ID
    if len(present) > 1:
        return None, None, SEVERAL_CLICK_IDS
    kind, value = present[0]
    return kind, str(value), None


async def session_subject(conn: AsyncConnection, scope: SiteScope, session_id: Any) -> str | None:
    if session_id is None:
        return None
    found = (
        await conn.execute(
            select(track_sessions.c.consent_subject).where(
                where_site(track_sessions, scope), track_sessions.c.id == int(session_id)
            )
        )
    ).scalar_one_or_none()
    return None if found is None else str(found)


def consent_reason(state: ConsentState | None, now: float) -> str | None:
    """Why the ads consent does not allow an upload at ``now`` (None: it does)."""
    if state is None:
        return CONSENT_MISSING
    record = state.purposes.get(PURPOSE)
    if record is None:
        return CONSENT_MISSING
    if record.value != "granted":
        return CONSENT_DENIED
    if not has_consent(state, PURPOSE, now):
        return CONSENT_EXPIRED
    return None


async def consent_states(conn: AsyncConnection, subjects: Iterable[str]) -> dict[str, ConsentState]:
    """The stored consent of many subjects in one read (a batch of up to 2,000 conversions
    is checked at once; ``service.consent.store.load_state`` reads one subject per query); a
    subject with nothing stored is absent. Reads only, the consent feature's table and model."""
    wanted = sorted(set(subjects))
    found: dict[str, ConsentState] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = await conn.execute(
            select(consent_state.c.subject, consent_state.c.purposes).where(
                consent_state.c.subject.in_(chunk)
            )
        )
        for row in rows:
            found[row.subject] = ConsentState(
                row.subject, purposes=purposes_from_json(row.purposes)
            )
    return found


async def subject_reason(conn: AsyncConnection, subject: str | None, now: float) -> str | None:
    if not subject:
        return NO_CONSENT_SUBJECT
    states = await consent_states(conn, [subject])
    return consent_reason(states.get(subject), now)
