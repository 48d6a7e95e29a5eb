"""CSV exports of a site's intents, sessions and conversions over a range of its local days.

**Who.** The site's owners and platform admins (an export hands over personal data in bulk: a
governance act, like managing members); editors and viewers get 403, anyone who may not see the
site 404 (``scope_for``).

**Before the first byte.** The caller's scope, the role and the range are checked, and the
export is audited (``tracking.export``, subject ``site:<id>``, details: kind, range, time zone)
in one transaction committed before streaming starts: a refusal is still a JSON 4xx, and an
export that began is on record even if the client drops it half-way. The row count cannot be
known then; it is logged when the stream ends.

**Streaming in keyset pages.** Rows are read in pages of ``PAGE_ROWS`` in key order, each page a
short read on a pooled connection of its own, continuing strictly after the last key of the
page before (``service.tracking.export_kinds``). Not one long server-side cursor: on MariaDB an
``SSCursor`` would hold a connection and one transaction's read view for as long as the client
takes to download (a slow client stalls purge for minutes), and the rest of the result must be
drained before the connection can be reused; on SQLite a long read keeps the WAL from being
checkpointed. Memory stays at one page plus one output chunk, whatever the range holds. The
cost: the export is not one snapshot. A row inserted during the export shows up if its key sorts
after the page being read (only possible when the range includes today), and an intent deleted
meanwhile is left out from its page on.

**Encoding.** ``core.tracking.csv_export``: a header row, RFC 4180 lines, formula-safe text,
timestamps in the site's time zone with their UTC offset (each timestamp column's header names
the zone), personal cells blanked where consent has lapsed (``export_consent``). Bytes are
yielded in chunks of about ``CHUNK_BYTES`` (never more than that plus one line).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from core.errors import Forbidden, ValidationFailed
from core.tracking.csv_export import CellFormat, header
from service.audit import record_audit
from service.db import Database
from service.tracking.access import Actor, scope_for
from service.tracking.dashboard import EARLIEST_DAY, LATEST_DAY, RULE_BOUNDS, RULE_ORDER
from service.tracking.dashboard_time import day_start
from service.tracking.export_consent import PageBlanker
from service.tracking.export_kinds import KINDS, ExportKind, ExportKindName, Window
from service.tracking.scope import SiteScope

log = logging.getLogger("kervan.tracking.export")

PAGE_ROWS = 5_000
CHUNK_BYTES = 64 * 1024
MAX_EXPORT_DAYS = 366
MEDIA_TYPE = "text/csv; charset=utf-8"
AUDIT_ACTION = "tracking.export"

#: The rules a range must follow (quoted by the 422 refusing it, listed in /openapi.json).
RULE_EXPORT_LENGTH = f"an export spans at most {MAX_EXPORT_DAYS} days"
EXPORT_RANGE_RULES = (RULE_ORDER, RULE_EXPORT_LENGTH, RULE_BOUNDS)


def require_export(scope: SiteScope) -> None:
    if not scope.can_manage:
        raise Forbidden("only the site's owners (and platform admins) export its data")


def export_window(first: date, last: date, zone: ZoneInfo) -> Window:
    """UTC bounds of local days ``first`` to ``last`` (both included), or a 422 naming the
    rule the range breaks."""
    for day in (first, last):
        if not EARLIEST_DAY <= day <= LATEST_DAY:
            raise ValidationFailed(f"{day} is out of range: {RULE_BOUNDS}")
    if first > last:
        raise ValidationFailed(f"{first} is after {last}: {RULE_ORDER}")
    if (last - first).days + 1 > MAX_EXPORT_DAYS:
        raise ValidationFailed(f"the range is too long: {RULE_EXPORT_LENGTH}")
    return Window(day_start(first, zone), day_start(last + timedelta(days=1), zone))


@dataclass
class ExportProgress:
    """What the stream has done so far (tests and the closing log line read it)."""

    rows: int = 0
    pages: int = 0
    chunks: int = 0
    bytes: int = 0
    finished: bool = False


@dataclass
class ExportFile:
    """An audited export, ready to stream."""

    chunks: AsyncIterator[bytes]
    filename: str
    progress: ExportProgress
    media_type: str = MEDIA_TYPE
    headers: dict[str, str] = field(default_factory=dict)


async def csv_chunks(
    db: Database,
    scope: SiteScope,
    kind: ExportKind,
    window: Window,
    *,
    consent_now: float,
    progress: ExportProgress | None = None,
    page_rows: int = PAGE_ROWS,
    chunk_bytes: int = CHUNK_BYTES,
) -> AsyncIterator[bytes]:
    """The export's bytes: the header line, then every row, in chunks of about
    ``chunk_bytes``; each page of ``page_rows`` rows is read on a connection of its own."""
    progress = progress if progress is not None else ExportProgress()
    fmt = CellFormat(ZoneInfo(scope.time_zone))
    blanker = PageBlanker(kind.columns)
    keys = kind.key_positions()
    pending: list[bytes] = [
        header(
            f"{c.name} ({scope.time_zone})" if c.zoned else c.name for c in kind.columns
        ).encode()
    ]
    size = len(pending[0])
    after: tuple[Any, ...] | None = None
    while True:
        async with db.connect() as conn:
            rows = list(await conn.execute(kind.page(scope, window, after, page_rows)))
            values = await blanker.apply(conn, rows, consent_now)
        progress.pages += 1
        for cells in values:
            data = fmt.row(cells).encode()
            pending.append(data)
            size += len(data)
            if size >= chunk_bytes:
                chunk = b"".join(pending)
                progress.chunks += 1
                progress.bytes += len(chunk)
                yield chunk
                pending, size = [], 0
        progress.rows += len(rows)
        if len(rows) < page_rows:
            break
        after = tuple(rows[-1][n] for n in keys)
    if pending:
        chunk = b"".join(pending)
        progress.chunks += 1
        progress.bytes += len(chunk)
        yield chunk
    progress.finished = True


async def start_export(
    db: Database,
    actor: Actor,
    site_id: int,
    kind: ExportKindName,
    first: date,
    last: date,
    *,
    now: datetime,
) -> ExportFile:
    """Check the caller and the range, audit the export, and hand back its stream. Everything
    that can refuse it does so here, before a byte is sent."""
    spec = KINDS[kind]
    async with db.begin() as conn:
        site, scope = await scope_for(conn, actor, site_id)
        require_export(scope)
        window = export_window(first, last, ZoneInfo(site.time_zone))
        await record_audit(
            conn,
            actor=scope.actor,
            action=AUDIT_ACTION,
            subject=f"site:{site.id}",
            details={
                "site_id": site.id,
                "kind": kind,
                "from": first.isoformat(),
                "to": last.isoformat(),
                "time_zone": site.time_zone,
            },
            ts=now,
        )
    progress = ExportProgress()
    filename = f"site-{site.id}-{kind}-{first.isoformat()}-{last.isoformat()}.csv"

    async def logged() -> AsyncIterator[bytes]:
        started = time.monotonic()
        try:
            async for chunk in csv_chunks(
                db, scope, spec, window, consent_now=now.timestamp(), progress=progress
            ):
                yield chunk
        finally:
            log.info(
                "tracking export %s",
                "finished" if progress.finished else "stopped",
                extra={
                    "site_id": site.id,
                    "kind": kind,
                    "actor": scope.actor,
                    "rows": progress.rows,
                    "bytes": progress.bytes,
                    "seconds": round(time.monotonic() - started, 3),
                },
            )

    return ExportFile(
        logged(),
        filename,
        progress,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )
