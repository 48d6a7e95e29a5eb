"""The contact's ``whatsapp`` consent, through the consent facility (subject ``contact:<id>``).

Every function runs inside the caller's transaction, so a keyword, its acknowledgement job and
the consent change commit together. Changes follow the runtime's consent policy, passed in by
the caller (``WhatsApp.consent``), never a process-wide one.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from core.consent.gate import has_consent
from service.consent import store
from service.consent.policy import ConsentPolicy

PURPOSE = "whatsapp"


def subject_of(contact_id: int) -> str:
    return f"contact:{contact_id}"


async def whatsapp_allowed(conn: AsyncConnection, contact_id: int, now: float) -> bool:
    state = await store.load_state(conn, subject_of(contact_id))
    return has_consent(state, PURPOSE, now)


async def _last_value(conn: AsyncConnection, contact_id: int) -> str | None:
    state = await store.load_state(conn, subject_of(contact_id))
    choice = state.purposes.get(PURPOSE)
    return None if choice is None else str(choice.value)


async def opt_out(
    conn: AsyncConnection, contact_id: int, now: float, *, source: str, policy: ConsentPolicy
) -> bool:
    """Withdraws consent; True when this changed something (so it is acknowledged once)."""
    if await _last_value(conn, contact_id) == "denied":
        return False
    await store.withdraw(
        conn, subject_of(contact_id), source=source, now=now, purposes=[PURPOSE], policy=policy
    )
    return True


async def opt_in(
    conn: AsyncConnection, contact_id: int, now: float, *, source: str, policy: ConsentPolicy
) -> bool:
    """Grants consent again; True when the contact did not already hold a valid grant."""
    if await whatsapp_allowed(conn, contact_id, now):
        return False
    await store.record(
        conn, subject_of(contact_id), {PURPOSE: "granted"}, source=source, now=now, policy=policy
    )
    return True
