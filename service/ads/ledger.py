"""The upload-attempt ledger: one row per request to Google (the token refresh and the upload:
``kind`` ``token`` / ``request``) and one per conversion's outcome in it (``kind`` ``row``),
with Google's ``request-id``, the outcome, the error code and the latency. Append-only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from service.db.tables.ads import ads_attempts
from service.tracking.scope import SiteScope, site_values

CHUNK = 1000


@dataclass(slots=True)
class LedgerEntries:
    """Entries of one batch, written with its outcomes in one transaction."""

    scope: SiteScope
    customer_id: str | None
    at: datetime
    rows: list[dict[str, Any]] = field(default_factory=list)

    def request(
        self,
        kind: str,
        outcome: str,
        *,
        request_id: str | None = None,
        error_code: str | None = None,
        http_status: int | None = None,
        latency: float | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.rows.append(
            self._entry(
                kind=kind,
                intent_id=None,
                attempt=None,
                outcome=outcome,
                request_id=request_id,
                error_code=error_code,
                http_status=http_status,
                latency=latency,
                batch_size=batch_size,
            )
        )

    def row(
        self,
        intent_id: int,
        attempt: int,
        outcome: str,
        *,
        request_id: str | None = None,
        error_code: str | None = None,
        http_status: int | None = None,
        latency: float | None = None,
    ) -> None:
        self.rows.append(
            self._entry(
                kind="row",
                intent_id=intent_id,
                attempt=attempt,
                outcome=outcome,
                request_id=request_id,
                error_code=error_code,
                http_status=http_status,
                latency=latency,
                batch_size=None,
            )
        )

    def _entry(self, *, latency: float | None, **values: Any) -> dict[str, Any]:
        code = values.get("error_code")
        request_id = values.get("request_id")
        return site_values(
            self.scope,
            **{
                **values,
                "error_code": None if code is None else str(code)[:80],
                "request_id": None if request_id is None else str(request_id)[:64],
            },
            customer_id=self.customer_id,
            latency_ms=None if latency is None else round(latency * 1000, 3),
            at=self.at,
        )

    async def write(self, conn: AsyncConnection) -> None:
        for start in range(0, len(self.rows), CHUNK):
            await conn.execute(insert(ads_attempts), self.rows[start : start + CHUNK])
        self.rows.clear()
