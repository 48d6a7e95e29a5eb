"""Audit export of consent events for a period, with hash-chain verification.

Verifying an event needs its whole chain, so every subject with an event in the period is
verified from its first event up to its state's head; only the period's events are exported.
The export reads in two passes: the first verifies (so the result can be announced in headers
before the body), the second writes rows, each marked with its own chain check.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.consent.chain import ChainBreak, ChainHead, ChainReport, ChainVerifier, ConsentEvent
from service.consent.sql import execute as _execute
from service.consent.store import event_from_row
from service.db import Database
from service.db.tables.consent import consent_events, consent_state

ExportFormat = Literal["csv", "jsonl"]
MEDIA_TYPES: dict[ExportFormat, str] = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
}
EXTENSIONS: dict[ExportFormat, str] = {"csv": "csv", "jsonl": "jsonl"}
SUBJECT_BATCH = 200
# The report lists at most this many breaks; the count covers all of them.
MAX_REPORTED_BREAKS = 1000

CSV_COLUMNS: tuple[str, ...] = (
    "subject",
    "seq",
    "ts_ms",
    "purpose",
    "value",
    "action",
    "prior_status",
    "source",
    "banner_version",
    "region",
    "expires_at_ms",
    "prev_hash",
    "hash",
    "chain_ok",
)


@dataclass(frozen=True, slots=True)
class Period:
    start_ms: int
    end_ms: int

    def contains(self, ts_ms: int) -> bool:
        return self.start_ms <= ts_ms < self.end_ms


@dataclass
class Verification:
    subjects: int = 0
    checked: int = 0
    exported: int = 0
    break_count: int = 0
    breaks: list[ChainBreak] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.break_count == 0

    def report(self) -> ChainReport:
        return ChainReport(ok=self.ok, checked=self.checked, breaks=tuple(self.breaks))

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "subjects": self.subjects,
            "checked": self.checked,
            "exported": self.exported,
            "break_count": self.break_count,
            "breaks": [item.to_json() for item in self.breaks],
        }


async def _subject_batches(conn: AsyncConnection, period: Period) -> AsyncIterator[list[str]]:
    after = ""
    while True:
        query = (
            select(consent_events.c.subject)
            .where(
                consent_events.c.ts_ms >= period.start_ms,
                consent_events.c.ts_ms < period.end_ms,
                consent_events.c.subject > after,
            )
            .distinct()
            .order_by(consent_events.c.subject)
            .limit(SUBJECT_BATCH)
        )
        subjects = [row[0] for row in (await _execute(conn, query)).all()]
        if not subjects:
            return
        yield subjects
        after = subjects[-1]


async def _chains(
    conn: AsyncConnection, subjects: Sequence[str]
) -> tuple[list[ConsentEvent], dict[str, ChainHead]]:
    rows = (
        await _execute(
            conn,
            select(consent_events)
            .where(consent_events.c.subject.in_(subjects))
            .order_by(consent_events.c.subject, consent_events.c.seq, consent_events.c.id),
        )
    ).mappings()
    events = [event_from_row(row) for row in rows]
    heads = {
        row["subject"]: ChainHead(int(row["seq"]), str(row["head_hash"]))
        for row in (
            await _execute(
                conn,
                select(
                    consent_state.c.subject, consent_state.c.seq, consent_state.c.head_hash
                ).where(consent_state.c.subject.in_(subjects)),
            )
        ).mappings()
    }
    return events, heads


def _verify_batch(events: Sequence[ConsentEvent], heads: dict[str, ChainHead]) -> ChainVerifier:
    verifier = ChainVerifier()
    for event in events:
        verifier.feed(event)
    verifier.finish(heads)
    return verifier


async def verify_period(conn: AsyncConnection, period: Period) -> Verification:
    """Verify the full chains of every subject with an event in ``period``."""
    result = Verification()
    async for subjects in _subject_batches(conn, period):
        events, heads = await _chains(conn, subjects)
        verifier = _verify_batch(events, heads)
        result.subjects += len(subjects)
        result.checked += verifier.checked
        result.exported += sum(1 for event in events if period.contains(event.ts_ms))
        result.break_count += len(verifier.breaks)
        room = MAX_REPORTED_BREAKS - len(result.breaks)
        result.breaks.extend(verifier.breaks[: max(room, 0)])
    return result


async def export_rows(conn: AsyncConnection, period: Period) -> AsyncIterator[dict[str, Any]]:
    """The period's events in (subject, seq) order, each with its own ``chain_ok``.

    Chains are verified again batch by batch here, so every row's mark describes exactly the
    chain it was read with, even if events were appended since the summary pass.
    """
    async for subjects in _subject_batches(conn, period):
        events, heads = await _chains(conn, subjects)
        broken = {(item.subject, item.seq) for item in _verify_batch(events, heads).breaks}
        for event in events:
            if period.contains(event.ts_ms):
                row = event.to_json()
                row["chain_ok"] = (event.subject, event.seq) not in broken
                yield row


async def render(
    rows: AsyncIterator[dict[str, Any]], fmt: ExportFormat, verification: Verification
) -> AsyncIterator[bytes]:
    """Encode rows; JSON lines end with one ``{"verification": ...}`` line."""
    if fmt == "jsonl":
        async for row in rows:
            yield orjson.dumps(row) + b"\n"
        yield orjson.dumps({"verification": verification.to_json()}) + b"\n"
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    async for row in rows:
        writer.writerow({**row, "chain_ok": "true" if row["chain_ok"] else "false"})
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


@dataclass(frozen=True)
class ExportFile:
    """A period's export, ready to stream: the verification summary travels in the headers."""

    chunks: AsyncIterator[bytes]
    media_type: str
    headers: dict[str, str]


def export_file(
    db: Database, period: Period, fmt: ExportFormat, verification: Verification
) -> ExportFile:
    """The export of ``period``; its rows are read on a connection of their own while streaming."""

    async def chunks() -> AsyncIterator[bytes]:
        async with db.connect() as conn:
            async for chunk in render(export_rows(conn, period), fmt, verification):
                yield chunk

    filename = f"consent-events-{period.start_ms}-{period.end_ms}.{EXTENSIONS[fmt]}"
    return ExportFile(
        chunks(),
        MEDIA_TYPES[fmt],
        {
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
            "X-Consent-Chain-Ok": "true" if verification.ok else "false",
            "X-Consent-Chain-Checked": str(verification.checked),
            "X-Consent-Chain-Breaks": str(verification.break_count),
            "X-Consent-Exported": str(verification.exported),
        },
    )
