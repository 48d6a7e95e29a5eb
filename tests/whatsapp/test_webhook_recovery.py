"""Raw events stored but never processed (the process died in between) are processed when the
service starts again, exactly once in effect; the periodic sweep leaves recent and in-flight
deliveries alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import insert

from core.clock import ManualClock
from service.db import Database
from service.db.tables.crm import crm_convos, crm_messages, wa_webhook_events
from service.db.types import from_timestamp
from service.metrics import REGISTRY
from service.settings import Settings
from service.whatsapp.facility import get_whatsapp
from service.whatsapp.recovery import WebhookRecovery
from service.whatsapp.webhook import encode_raw
from tests.whatsapp import payloads as p
from tests.whatsapp.conftest import post_webhook, runtime_of
from tests.whatsapp.dbutil import count, message_by_provider_id, rows, seed_outbound

WA = "905321110000"


async def store_raw(db: Database, body: Any, received_at: datetime) -> int:
    """A raw event as the store step leaves it: committed, ``received``, not processed."""
    text, encoding = encode_raw(body if isinstance(body, bytes) else orjson.dumps(body))
    async with db.begin() as conn:
        result = await conn.execute(
            insert(wa_webhook_events).values(
                received_at=received_at,
                body=text,
                body_encoding=encoding,
                state="received",
                messages=0,
                statuses=0,
            )
        )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


async def states(db: Database) -> dict[int, str]:
    return {e.id: e.state for e in await rows(db, wa_webhook_events)}


def recovered_total() -> float:
    return REGISTRY.get_sample_value("kervan_whatsapp_webhooks_recovered_total") or 0.0


async def test_unprocessed_deliveries_are_processed_at_start_up(
    database_url: str,
    wa_settings: Callable[..., Settings],
    make_client: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]],
    clock: ManualClock,
) -> None:
    db = Database(database_url)
    try:
        await seed_outbound(db, "wamid.OUT.R")
        at = from_timestamp(clock.now())
        first = p.inbound(WA, "Ayşe", p.text(WA, "wamid.R1", "bir"))
        ids = [
            await store_raw(db, first, at),
            await store_raw(
                db,
                p.inbound(WA, "Ayşe", p.text(WA, "wamid.R1", "bir"), p.text(WA, "wamid.R2", "iki")),
                at,
            ),
            await store_raw(db, p.statuses(p.status("wamid.OUT.R", "delivered")), at),
            await store_raw(db, b"{not json", at),
        ]
    finally:
        await db.dispose()
    before = recovered_total()
    async with make_client(wa_settings(), clock=clock) as client:
        runtime = runtime_of(client)
        deadline = time.monotonic() + 10
        while "received" in (await states(runtime.db)).values():
            assert time.monotonic() < deadline, await states(runtime.db)
            await asyncio.sleep(0.02)
        assert await states(runtime.db) == dict(
            zip(ids, ["processed", "processed", "processed", "rejected"], strict=True)
        )
        assert recovered_total() - before == 4
        messages = [
            m.provider_id
            for m in await rows(runtime.db, crm_messages, crm_messages.c.direction == "in")
        ]
        assert sorted(messages) == ["wamid.R1", "wamid.R2"]
        [convo] = [c for c in await rows(runtime.db, crm_convos) if c.unread]
        assert convo.unread == 2
        assert (await message_by_provider_id(runtime.db, "wamid.OUT.R")).status == "delivered"
        # Meta redelivers what it never got a 200 for: a duplicate now, not a second message.
        again = await post_webhook(client, first)
        assert (again.json()["messages"], again.json()["duplicates"]) == (0, 1)
        assert await count(runtime.db, crm_messages) == 3


async def test_the_sweep_leaves_recent_and_in_flight_deliveries_alone(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    runtime = runtime_of(client)
    processor = get_whatsapp(runtime).processor
    now = from_timestamp(clock.now())
    old = now - timedelta(minutes=10)

    def delivery(n: int) -> Any:
        # Stamped "now" by the sender: only the arrival time caps it.
        return p.inbound(WA, "A", p.text(WA, f"wamid.S{n}", "x", ts=int(clock.now())))

    orphan = await store_raw(runtime.db, delivery(1), old)
    in_flight = await store_raw(runtime.db, delivery(2), old)
    recent = await store_raw(runtime.db, delivery(3), now - timedelta(seconds=30))
    processor.in_flight.add(in_flight)
    try:
        # Not started: no start-up boundary, so only the stale condition applies.
        sweep = WebhookRecovery(runtime, processor, stale_after=120)
        await sweep.step()
    finally:
        processor.in_flight.discard(in_flight)
    assert await states(runtime.db) == {
        orphan: "processed",
        in_flight: "received",
        recent: "received",
    }
    # Processed as of its arrival ten minutes ago, not as of the sweep: the reply window
    # counts from when the customer wrote.
    [convo] = await rows(runtime.db, crm_convos)
    assert convo.last_inbound_at <= old
    clock.advance(120)
    await sweep.step()
    assert set((await states(runtime.db)).values()) == {"processed"}
    assert await count(runtime.db, crm_messages) == 3
