"""The one consent gate every feature uses (outbound WhatsApp, script gating, server-side tags)."""

from __future__ import annotations

from core.consent.model import ConsentState


def has_consent(state: ConsentState | None, purpose: str, now: float) -> bool:
    """True only for a granted choice that has not yet expired at ``now``.

    A choice is valid for ``ts <= now < expires_at``; at ``expires_at`` it has expired. Unknown
    subjects, unknown purposes, refusals and withdrawals all answer False.
    """
    if state is None:
        return False
    record = state.purposes.get(purpose)
    if record is None or record.value != "granted":
        return False
    return now < record.expires_at
