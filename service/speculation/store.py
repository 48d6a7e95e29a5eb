"""The flow edge store: transition counts per segment with exact per-source probabilities.

Every write runs in one transaction that first bumps the segment's row in ``flow_segments``.
That row lock serializes the writers of a segment on MariaDB (SQLite has one writer anyway), so
the probabilities recomputed at the end of the transaction are exact: no other writer can add
to a source's total between the sum and the update.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Float, and_, bindparam, cast, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.db import Database
from service.db.conflicts import retry_lock_conflicts
from service.db.tables.flows import flow_edges, flow_segments
from service.db.upsert import upsert_stmt

#: Rows per multi-row INSERT (SQLite allows 32766 bound parameters; 6 per row).
INSERT_CHUNK = 500
#: Source paths per IN (...) list.
IN_CHUNK = 500

T = TypeVar("T")
Transition = tuple[str, str, str]  # (seg, from_path, to_path)


@dataclass(frozen=True, slots=True)
class EdgeRow:
    from_path: str
    to_path: str
    count: int
    probability: float
    updated_at: datetime


def _chunks(items: list[T], size: int) -> Iterable[list[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


async def _bump_segments(
    conn: AsyncConnection, dialect: str, segs: Iterable[str], now: datetime
) -> None:
    # Sorted, so two writers touching the same segments lock them in the same order.
    for seg in sorted(set(segs)):
        await conn.execute(
            upsert_stmt(
                dialect,
                flow_segments,
                {"seg": seg, "version": 1, "updated_at": now},
                index_elements=["seg"],
                update_columns={
                    "version": flow_segments.c.version + 1,
                    "updated_at": lambda new: new("updated_at"),
                },
            )
        )


async def _recompute(conn: AsyncConnection, seg: str, sources: Iterable[str] | None) -> None:
    """Set probability = count / out-total for every edge leaving ``sources`` (None: all)."""
    where = [flow_edges.c.seg == seg]
    source_lists: list[list[str] | None] = (
        [None] if sources is None else list(_chunks(sorted(set(sources)), IN_CHUNK))
    )
    for chunk in source_lists:
        cond = (
            and_(*where, flow_edges.c.from_path.in_(chunk)) if chunk is not None else and_(*where)
        )
        totals = (
            await conn.execute(
                select(flow_edges.c.from_path, func.sum(flow_edges.c.count))
                .where(cond)
                .group_by(flow_edges.c.from_path)
            )
        ).all()
        if not totals:
            continue
        await conn.execute(
            update(flow_edges)
            .where(flow_edges.c.seg == seg, flow_edges.c.from_path == bindparam("b_from"))
            .values(
                probability=cast(flow_edges.c.count, Float) / bindparam("b_total", type_=Float)
            ),
            [{"b_from": src, "b_total": float(total)} for src, total in totals],
        )


async def _add_counts(
    conn: AsyncConnection, dialect: str, counts: Mapping[Transition, int], now: datetime
) -> None:
    """Upsert ``(seg, from, to) -> count`` rows, adding to the counts already stored."""
    rows = [
        {
            "seg": seg,
            "from_path": a,
            "to_path": b,
            "count": n,
            "probability": 0.0,  # set by _recompute before the transaction ends
            "updated_at": now,
        }
        for (seg, a, b), n in sorted(counts.items())
    ]
    for chunk in _chunks(rows, INSERT_CHUNK):
        await conn.execute(
            upsert_stmt(
                dialect,
                flow_edges,
                chunk,
                index_elements=["seg", "from_path", "to_path"],
                update_columns={
                    "count": lambda new: flow_edges.c.count + new("count"),
                    "updated_at": lambda new: new("updated_at"),
                },
            )
        )


async def add_transitions(db: Database, counts: Mapping[Transition, int], now: datetime) -> None:
    """Add observed transitions (``(seg, from, to) -> count``), all or nothing."""
    if not counts:
        return
    sources: dict[str, set[str]] = defaultdict(set)
    for seg, a, _b in counts:
        sources[seg].add(a)

    async def write() -> None:
        async with db.begin() as conn:
            await _bump_segments(conn, db.dialect, sources, now)
            await _add_counts(conn, db.dialect, counts, now)
            for seg, srcs in sorted(sources.items()):
                await _recompute(conn, seg, srcs)

    await retry_lock_conflicts(write)


async def load_edges(
    db: Database, seg: str, edges: Mapping[tuple[str, str], int], *, replace: bool, now: datetime
) -> None:
    """Bulk-load aggregated counts for ``seg``: replace its edges, or add to them."""
    counts = {(seg, a, b): n for (a, b), n in edges.items()}

    async def write() -> None:
        async with db.begin() as conn:
            await _bump_segments(conn, db.dialect, [seg], now)
            if replace:
                await conn.execute(delete(flow_edges).where(flow_edges.c.seg == seg))
            await _add_counts(conn, db.dialect, counts, now)
            await _recompute(conn, seg, None if replace else {a for a, _ in edges})

    await retry_lock_conflicts(write)


async def list_edges(
    db: Database, seg: str, *, limit: int, after: tuple[str, str] | None = None
) -> list[EdgeRow]:
    """One page of ``seg``'s edges in (from_path, to_path) order, after the cursor."""
    query = select(
        flow_edges.c.from_path,
        flow_edges.c.to_path,
        flow_edges.c.count,
        flow_edges.c.probability,
        flow_edges.c.updated_at,
    ).where(flow_edges.c.seg == seg)
    if after is not None:
        a, b = after
        query = query.where(
            or_(
                flow_edges.c.from_path > a,
                and_(flow_edges.c.from_path == a, flow_edges.c.to_path > b),
            )
        )
    query = query.order_by(flow_edges.c.from_path, flow_edges.c.to_path).limit(limit)
    async with db.connect() as conn:
        result = await conn.execute(query)
        return [EdgeRow(*row) for row in result.all()]


async def segment_edges(db: Database, seg: str) -> tuple[int, list[tuple[str, str, int]]]:
    """The segment's version and all its ``(from, to, count)`` edges, read consistently."""
    async with db.begin() as conn:
        version = (
            await conn.execute(select(flow_segments.c.version).where(flow_segments.c.seg == seg))
        ).scalar_one_or_none()
        rows = (
            await conn.execute(
                select(flow_edges.c.from_path, flow_edges.c.to_path, flow_edges.c.count)
                .where(flow_edges.c.seg == seg)
                .order_by(flow_edges.c.from_path, flow_edges.c.to_path)
            )
        ).all()
    return int(version or 0), [(a, b, int(n)) for a, b, n in rows]


async def segment_version(db: Database, seg: str) -> int:
    async with db.connect() as conn:
        version = (
            await conn.execute(select(flow_segments.c.version).where(flow_segments.c.seg == seg))
        ).scalar_one_or_none()
    return int(version or 0)


__all__ = [
    "EdgeRow",
    "Transition",
    "add_transitions",
    "list_edges",
    "load_edges",
    "segment_edges",
    "segment_version",
]
