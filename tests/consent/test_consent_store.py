"""The consent store on SQLite and MariaDB: caller's transaction, chain, concurrency."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select, update

from core.consent.chain import ChainHead, verify_chain
from core.consent.gate import has_consent
from core.errors import ValidationFailed
from service.audit import record_audit
from service.consent import store
from service.consent.policy import ConsentPolicy
from service.db import Database
from service.db.tables.consent import consent_events, consent_state

from .helpers import BANNER, REGISTRY, T0, at

POLICY = ConsentPolicy(
    registry=REGISTRY,
    banner=BANNER,
    token_keys=(b"k" * 32,),
    token_lifetime=3600,
    subject_keys=(b"s" * 32,),
)


async def test_unknown_subject_loads_empty_state(database: Database) -> None:
    async with database.connect() as conn:
        state = await store.load_state(conn, "nobody")
    assert state.subject == "nobody" and state.purposes == {} and state.seq == 0


async def test_record_then_load_round_trips(database: Database) -> None:
    async with database.begin() as conn:
        written = await store.record(
            conn,
            "user-1",
            {"analytics": "granted", "ads": "denied"},
            source="banner",
            now=T0 + 0.123,
            region="de",
            policy=POLICY,
        )
    async with database.connect() as conn:
        loaded = await store.load_state(conn, "user-1")
        events = await store.list_events(conn, "user-1")
    assert loaded == written
    assert loaded.region == "DE"
    assert loaded.purposes["analytics"].ts == T0 + 0.123
    assert loaded.purposes["analytics"].expires_at == at(2026, 7, 15) + 0.123
    assert has_consent(loaded, "analytics", T0 + 1)
    assert not has_consent(loaded, "ads", T0 + 1)
    assert [(e.seq, e.purpose, e.action, e.source) for e in events] == [
        (1, "ads", "refuse", "banner"),
        (2, "analytics", "grant", "banner"),
    ]
    assert verify_chain(events, {"user-1": ChainHead(loaded.seq, loaded.head_hash)}).ok


async def test_changes_join_the_callers_transaction(database: Database) -> None:
    """A rolled-back caller transaction leaves neither state nor events behind."""

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with database.begin() as conn:
            await store.record(
                conn, "wa:90555", {"whatsapp": "granted"}, source="api", now=T0, policy=POLICY
            )
            raise Abort
    async with database.begin() as conn:
        await store.record(
            conn, "wa:90555", {"whatsapp": "granted"}, source="api", now=T0, policy=POLICY
        )
        # The same transaction stores something else, as the WhatsApp inbound handler does.
        await record_audit(conn, actor="test", action="wa.inbound", subject="wa:90555")
        state = await store.withdraw(
            conn,
            "wa:90555",
            source="whatsapp_keyword",
            now=T0 + 5,
            purposes=["whatsapp"],
            policy=POLICY,
        )
    assert not has_consent(state, "whatsapp", T0 + 6)
    async with database.connect() as conn:
        count = (
            await conn.execute(
                select(func.count())
                .select_from(consent_events)
                .where(consent_events.c.subject == "wa:90555")
            )
        ).scalar_one()
        events = await store.list_events(conn, "wa:90555")
    assert count == 2
    assert [(e.seq, e.action, e.prior_status) for e in events] == [
        (1, "grant", "unknown"),
        (2, "withdraw", "granted"),
    ]


async def test_invalid_input_writes_nothing(database: Database) -> None:
    with pytest.raises(ValidationFailed):
        async with database.begin() as conn:
            await store.record(
                conn, "user-2", {"cookies": "granted"}, source="api", now=T0, policy=POLICY
            )
    with pytest.raises(ValidationFailed):
        async with database.begin() as conn:
            await store.record(
                conn, "x" * 65, {"ads": "granted"}, source="api", now=T0, policy=POLICY
            )
    with pytest.raises(ValidationFailed):
        async with database.begin() as conn:
            await store.withdraw(conn, "user-2", source="sms", now=T0, policy=POLICY)
    async with database.connect() as conn:
        rows = (await conn.execute(select(func.count()).select_from(consent_state))).scalar_one()
    assert rows == 0


async def test_concurrent_writers_keep_one_unbroken_chain(database: Database) -> None:
    async def write(index: int) -> None:
        async with database.begin() as conn:
            await store.record(
                conn,
                "busy-subject",
                {"analytics": "granted" if index % 2 else "denied"},
                source="api",
                now=T0 + index,
                policy=POLICY,
            )

    await asyncio.gather(*(write(index) for index in range(6)))
    async with database.connect() as conn:
        state = await store.load_state(conn, "busy-subject")
        events = await store.list_events(conn, "busy-subject")
    assert state.seq == 6 == len(events)
    assert [event.seq for event in events] == list(range(1, 7))
    assert verify_chain(events, {"busy-subject": ChainHead(state.seq, state.head_hash)}).ok


async def test_tampered_row_is_detected(database: Database) -> None:
    async with database.begin() as conn:
        await store.record(
            conn,
            "user-3",
            {"analytics": "denied", "ads": "denied"},
            source="banner",
            now=T0,
            policy=POLICY,
        )
    async with database.begin() as conn:
        await conn.execute(
            update(consent_events)
            .where(consent_events.c.subject == "user-3", consent_events.c.seq == 1)
            .values(value="granted")
        )
    async with database.connect() as conn:
        state = await store.load_state(conn, "user-3")
        events = await store.list_events(conn, "user-3")
    report = verify_chain(events, {"user-3": ChainHead(state.seq, state.head_hash)})
    assert [(b.seq, b.reason) for b in report.breaks] == [(1, "hash_mismatch")]
