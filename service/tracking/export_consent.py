"""Which personal cells of an export page may be shown: the visitor's consent for the column's
purpose must be granted and unexpired at the export's instant (``core.consent.gate``, the gate
every feature uses). A row without a consent subject, or whose subject has no stored choice,
shows none of them: nothing proves the visitor agreed.

Consent is read once per page for the page's distinct subjects not seen before (the ads
uploader's batched read of the consent feature's table), and each subject's answer is kept for
the rest of the export (at most ``CACHED_SUBJECTS`` of them, the oldest dropped first): every
page is judged at the same instant, so a returning visitor's answer cannot change meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from core.consent.gate import has_consent
from service.ads.eligibility import consent_states
from service.tracking.export_kinds import ExportColumn

CACHED_SUBJECTS = 20_000
_NOTHING: frozenset[str] = frozenset()


class PageBlanker:
    """Blanks the personal cells of an export's rows whose consent is not in force."""

    def __init__(self, columns: Sequence[ExportColumn], *, cached: int = CACHED_SUBJECTS) -> None:
        self.personal = [(n, c.purpose) for n, c in enumerate(columns) if c.purpose is not None]
        self.purposes = sorted({purpose for _, purpose in self.personal})
        self.cached = cached
        #: subject -> the purposes it has consent for at the export's instant.
        self.allowed: dict[str, frozenset[str]] = {}
        self.lookups = 0

    async def _learn(self, conn: AsyncConnection, subjects: set[str], now: float) -> None:
        unknown = [subject for subject in subjects if subject not in self.allowed]
        if not unknown:
            return
        self.lookups += len(unknown)
        states = await consent_states(conn, unknown)
        for subject in unknown:
            state = states.get(subject)
            self.allowed[subject] = frozenset(
                p for p in self.purposes if has_consent(state, p, now)
            )
        for stale in list(self.allowed)[: max(0, len(self.allowed) - self.cached)]:
            if stale not in subjects:
                del self.allowed[stale]

    async def apply(
        self, conn: AsyncConnection, rows: Sequence[Any], now: float
    ) -> list[list[Any]]:
        """The rows' exported values (the trailing ``consent_subject`` dropped), blanked."""
        width = len(rows[0]) - 1 if rows else 0
        values = [list(row[:width]) for row in rows]
        if not self.personal:
            return values
        subjects = {row[width] for row in rows if row[width]}
        await self._learn(conn, subjects, now)
        allowed = self.allowed
        for row, cells in zip(rows, values, strict=True):
            subject = row[width]
            granted = allowed[subject] if subject else _NOTHING
            for position, purpose in self.personal:
                if purpose not in granted:
                    cells[position] = None
        return values
