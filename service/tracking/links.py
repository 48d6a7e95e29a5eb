"""WhatsApp messages to intents: the reference code a visitor's pre-filled text carries
(``... (ref: K7X2QW)``) links the WhatsApp intent of that click to the CRM conversation the
message arrived in, so the site owner sees which ad click became which conversation.

``link_inbound`` is an inbound hook of the WhatsApp webhook processor
(``service/whatsapp/webhook.py``): it runs inside the transaction that stores the messages, so
the link commits with them. It is idempotent: an intent is linked once, to the first
conversation that names its code (a redelivered message, or the code sent again, changes
nothing). A code is found anywhere in a text, in any case (``REF: k7x2qw``); only codes of the
script's alphabet (``[A-Z2-9]{6}``) are looked up.

Reference codes are unique across sites (one business number may serve several), so finding
the intent of a code is the one read here that spans sites, on purpose; the link itself is
written under the intent's own site.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.db.tables.tracking import sites, track_intents
from service.logging import get_logger
from service.tracking.scope import ALL_SITES
from service.whatsapp.store import StoredInbound

log = get_logger("kervan.tracking.links")

REF_CODE_PATTERN = r"^[A-Z2-9]{6}$"
_REF = re.compile(r"(?<![A-Za-z0-9])ref\s*:\s*([A-Za-z2-9]{6})(?![A-Za-z0-9])", re.IGNORECASE)
#: Most codes one message may name (a pasted wall of text does not become a big IN list).
MAX_CODES_PER_MESSAGE = 5


def ref_codes(text: str | None) -> list[str]:
    """The reference codes in a message text, upper-cased, in order, without repeats."""
    if not text:
        return []
    found: list[str] = []
    for match in _REF.finditer(text):
        code = match.group(1).upper()
        if code not in found:
            found.append(code)
        if len(found) == MAX_CODES_PER_MESSAGE:
            break
    return found


async def link_inbound(
    conn: AsyncConnection, stored: Sequence[StoredInbound], now: datetime
) -> list[dict[str, Any]]:
    """Link the WhatsApp intents whose codes the new messages name to their conversations."""
    wanted: dict[str, int] = {}  # code -> the conversation of the first message naming it
    for item in stored:
        for code in ref_codes(item.event.body):
            wanted.setdefault(code, item.convo_id)
    if not wanted:
        return []
    query = (
        select(
            track_intents.c.id,
            track_intents.c.site_id,
            track_intents.c.ref_code,
            track_intents.c.conversation_id,
        )
        .where(
            track_intents.c.ref_code.in_(sorted(wanted)),
            track_intents.c.kind == "whatsapp",
            track_intents.c.deleted_at.is_(None),
            # Nor an intent of a deleted site (service/tracking/trash.py).
            track_intents.c.site_id.in_(select(sites.c.id).where(sites.c.deleted_at.is_(None))),
        )
        # A code names one intent whatever its site (unique across sites): looked up by code.
        .execution_options(**ALL_SITES)
    )
    for row in (await conn.execute(query)).all():
        if row.conversation_id is not None:
            continue
        convo_id = wanted[str(row.ref_code)]
        await conn.execute(
            update(track_intents)
            .where(
                track_intents.c.site_id == row.site_id,
                track_intents.c.id == row.id,
                track_intents.c.conversation_id.is_(None),
            )
            .values(conversation_id=convo_id, updated_at=now)
        )
        log.info(
            "a WhatsApp conversation was linked to its intent",
            extra={"site": int(row.site_id), "intent": int(row.id), "conversation": convo_id},
        )
    return []
