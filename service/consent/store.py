"""Consent storage: ``consent_state`` plus the append-only ``consent_events`` chain.

Every function works inside the caller's transaction, so a feature can change consent in the
same transaction as its own writes (e.g. an inbound WhatsApp STOP and the stored message).
Writers lock the subject's state row first; a writer that still collides on ``(subject, seq)``
fails with ``core.errors.Conflict`` instead of forking the chain.

Writers take the runtime's ``ConsentPolicy`` (``runtime.facility(ConsentPolicy)``) explicitly:
it decides which purposes exist, their lifetimes and the banner version in force. Readers need
no policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from sqlalchemy import RowMapping, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.consent.chain import ConsentEvent
from core.consent.model import (
    GENESIS_HASH,
    ConsentState,
    purposes_from_json,
    validate_subject,
)
from core.consent.transitions import Transition, apply_choices, apply_withdrawal
from service.consent.metrics import CONSENT_EVENTS
from service.consent.policy import ConsentPolicy
from service.consent.sql import execute as _execute
from service.db.tables.consent import consent_events, consent_state
from service.db.types import from_timestamp
from service.db.upsert import upsert_stmt


async def load_state(conn: AsyncConnection, subject: str) -> ConsentState:
    """The subject's state; an empty one (every purpose unknown) if nothing was recorded."""
    validate_subject(subject)
    return await _select_state(conn, subject, lock=False)


async def record(
    conn: AsyncConnection,
    subject: str,
    choices: Mapping[str, Literal["granted", "denied"]],
    *,
    source: str,
    now: float,
    banner_version: str | None = None,
    region: str | None = None,
    policy: ConsentPolicy,
) -> ConsentState:
    """Record grants/refusals; unknown purposes, values, sources or versions raise 422 errors."""
    validate_subject(subject)
    state = await _lock_state(conn, subject)
    move = apply_choices(
        state,
        choices,
        source=source,
        now=now,
        registry=policy.registry,
        banner=policy.banner,
        banner_version=banner_version,
        region=region,
    )
    await _persist(conn, move)
    return move.state


async def withdraw(
    conn: AsyncConnection,
    subject: str,
    *,
    source: str,
    now: float,
    purposes: Sequence[str] | None = None,
    policy: ConsentPolicy,
) -> ConsentState:
    """Deny ``purposes`` (every registered purpose by default); logged as withdrawals."""
    validate_subject(subject)
    state = await _lock_state(conn, subject)
    move = apply_withdrawal(
        state,
        source=source,
        now=now,
        registry=policy.registry,
        banner=policy.banner,
        purposes=purposes,
    )
    await _persist(conn, move)
    return move.state


async def list_events(
    conn: AsyncConnection, subject: str, *, after_seq: int = 0, limit: int = 100
) -> list[ConsentEvent]:
    validate_subject(subject)
    query = (
        select(consent_events)
        .where(consent_events.c.subject == subject, consent_events.c.seq > after_seq)
        .order_by(consent_events.c.seq)
        .limit(limit)
    )
    rows = (await _execute(conn, query)).mappings().all()
    return [event_from_row(row) for row in rows]


def event_from_row(row: RowMapping) -> ConsentEvent:
    return ConsentEvent.from_json(dict(row))


async def _lock_state(conn: AsyncConnection, subject: str) -> ConsentState:
    # Insert-or-ignore first so that two writers on a new subject queue on the same row lock
    # instead of both reading "nothing yet" and forking the chain.
    dialect = conn.dialect.name
    await _execute(
        conn,
        upsert_stmt(
            "sqlite" if dialect == "sqlite" else "mysql",
            consent_state,
            {
                "subject": subject,
                "region": None,
                "purposes": {},
                "seq": 0,
                "head_hash": GENESIS_HASH,
                "updated_at": None,
            },
            index_elements=["subject"],
        ),
    )
    return await _select_state(conn, subject, lock=True)


async def _select_state(conn: AsyncConnection, subject: str, *, lock: bool) -> ConsentState:
    query = select(consent_state).where(consent_state.c.subject == subject)
    if lock and conn.dialect.name != "sqlite":
        query = query.with_for_update()
    row = (await _execute(conn, query)).mappings().first()
    if row is None:
        return ConsentState(subject)
    updated = row["updated_at"]
    return ConsentState(
        subject=subject,
        region=row["region"],
        purposes=purposes_from_json(row["purposes"]),
        updated_at=None if updated is None else updated.timestamp(),
        seq=int(row["seq"]),
        head_hash=str(row["head_hash"]),
    )


async def _persist(conn: AsyncConnection, move: Transition) -> None:
    state = move.state
    await _execute(conn, insert(consent_events), [_event_row(event) for event in move.events])
    for event in move.events:
        CONSENT_EVENTS.labels(event.action, event.source).inc()
    await _execute(
        conn,
        update(consent_state)
        .where(consent_state.c.subject == state.subject)
        .values(
            region=state.region,
            purposes=state.purposes_json(),
            seq=state.seq,
            head_hash=state.head_hash,
            updated_at=None if state.updated_at is None else from_timestamp(state.updated_at),
        ),
    )


def _event_row(event: ConsentEvent) -> dict[str, Any]:
    return event.to_json()
