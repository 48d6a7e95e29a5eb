"""Every stored webhook delivery is applied exactly once, however many processes reach for it
(issue 13): two apps over one database stand for two processes, each with its own processor and
recovery; the processing transaction claims its raw events before it applies them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import insert

from core.clock import ManualClock
from service.db import Database
from service.db.tables.crm import crm_convos, crm_messages, crm_pending_statuses, wa_webhook_events
from service.db.types import from_timestamp
from service.metrics import REGISTRY
from service.runtime import Runtime
from service.settings import Settings
from service.whatsapp.facility import get_whatsapp
from service.whatsapp.recovery import WebhookRecovery
from service.whatsapp.store import StoredInbound
from service.whatsapp.webhook import Result, StoredDelivery, WebhookProcessor, encode_raw
from tests.whatsapp import payloads as p
from tests.whatsapp.conftest import post_webhook, runtime_of
from tests.whatsapp.dbutil import count, message_by_provider_id, rows, seed_outbound

CUSTOMERS = 4
DELIVERIES = 12


@pytest.fixture
async def apps(
    wa_settings: Callable[..., Settings],
    make_client: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]],
    clock: ManualClock,
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two apps over the same database, as two processes would be."""
    async with (
        make_client(wa_settings(), clock=clock) as one,
        make_client(wa_settings(), clock=clock) as two,
    ):
        yield one, two


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


def recovered_total() -> float:
    return REGISTRY.get_sample_value("kervan_whatsapp_webhooks_recovered_total") or 0.0


async def until(predicate: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 30
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def gated(entered: asyncio.Event, gate: asyncio.Event) -> Callable[[], Awaitable[None]]:
    """A processor hold: tells that a processing group was taken, then waits for the gate."""

    async def hold() -> None:
        entered.set()
        await gate.wait()

    return hold


def recording(processor: WebhookProcessor, submitted: list[list[int]]) -> None:
    """Records the event ids each recovery chunk hands to ``processor``."""
    original = processor.process_many

    async def process_many(items: Sequence[StoredDelivery]) -> list[Result]:
        submitted.append([item.event_id for item in items])
        return await original(items)

    processor.process_many = process_many  # type: ignore[method-assign]


def delivery(n: int) -> dict[str, Any]:
    """A new message and a status of a message not known yet (parked: a second application of
    the delivery would park it twice)."""
    wa_id = f"9053200{n % CUSTOMERS:05d}"
    return p.envelope(
        p.value(
            contacts=[p.contact(wa_id, f"Müşteri {n % CUSTOMERS}")],
            messages=[p.text(wa_id, f"wamid.CL{n}", "selam", ts=1_700_000_100 + n)],
            statuses=[p.status(f"wamid.CL.UNKNOWN{n}", "delivered")],
        )
    )


async def test_two_processes_recovering_at_once_apply_each_delivery_once(
    apps: tuple[httpx.AsyncClient, httpx.AsyncClient], clock: ManualClock
) -> None:
    runtimes: list[Runtime] = [runtime_of(app) for app in apps]
    processors = [get_whatsapp(runtime).processor for runtime in runtimes]
    db = runtimes[0].db
    await seed_outbound(db, "wamid.CL.OUT", wa_id="905320099999")
    old = from_timestamp(clock.now()) - timedelta(minutes=10)
    payloads: list[Any] = [delivery(n) for n in range(DELIVERIES)]
    payloads.append(p.statuses(p.status("wamid.CL.OUT", "read", ts=1_700_000_300)))
    payloads.append(b"{not json")
    ids = [await store_raw(db, body, old) for body in payloads]

    # Both recoveries read the same orphans, and both processing groups are taken, before
    # either may go on: they reach for the same rows at the same time.
    gate = asyncio.Event()
    taken = [asyncio.Event(), asyncio.Event()]
    submitted: list[list[int]] = []
    for processor, entered in zip(processors, taken, strict=True):
        processor.hold = gated(entered, gate)
        recording(processor, submitted)
    recoveries = [
        WebhookRecovery(runtime, processor)
        for runtime, processor in zip(runtimes, processors, strict=True)
    ]
    before = recovered_total()
    condition = wa_webhook_events.c.id.in_(ids)
    tasks = [asyncio.create_task(recovery.recover(condition)) for recovery in recoveries]

    async def both_taken() -> bool:
        return all(entered.is_set() for entered in taken)

    await until(both_taken, "both recoveries to take their groups")
    assert submitted == [ids, ids]
    gate.set()
    recovered = await asyncio.gather(*tasks)

    assert sum(recovered) == len(ids), recovered
    assert recovered_total() - before == len(ids)
    events = await rows(db, wa_webhook_events, wa_webhook_events.c.id.in_(ids))
    assert [e.state for e in events] == ["processed"] * (len(ids) - 1) + ["rejected"]
    assert [e.messages for e in events[:DELIVERIES]] == [1] * DELIVERIES
    inbound = [
        m.provider_id for m in await rows(db, crm_messages, crm_messages.c.direction == "in")
    ]
    assert sorted(inbound) == sorted(f"wamid.CL{n}" for n in range(DELIVERIES))
    unread = sorted(c.unread for c in await rows(db, crm_convos) if c.unread)
    assert unread == [DELIVERIES // CUSTOMERS] * CUSTOMERS
    parked = [s.provider_id for s in await rows(db, crm_pending_statuses)]
    assert sorted(parked) == sorted(f"wamid.CL.UNKNOWN{n}" for n in range(DELIVERIES))
    assert (await message_by_provider_id(db, "wamid.CL.OUT")).status == "read"


async def test_a_recovery_skips_a_delivery_a_live_group_is_applying(
    apps: tuple[httpx.AsyncClient, httpx.AsyncClient], database_url: str
) -> None:
    """The live group of one process holds its claim (its transaction is open, blocked in a
    hook); the other process's recovery reaches for the same event and leaves it."""
    one, two = apps
    runtime_one, runtime_two = runtime_of(one), runtime_of(two)
    applying, release = asyncio.Event(), asyncio.Event()

    async def blocking(
        _conn: object, _stored: Sequence[StoredInbound], _now: object
    ) -> list[dict[str, Any]]:
        applying.set()
        await release.wait()
        return []

    get_whatsapp(runtime_one).processor.hooks.append(blocking)
    live = asyncio.create_task(post_webhook(one, delivery(0)))
    await applying.wait()
    [event] = await rows(runtime_one.db, wa_webhook_events)
    assert event.state == "received"
    processor_two = get_whatsapp(runtime_two).processor
    taken = asyncio.Event()

    async def note() -> None:
        taken.set()

    processor_two.hold = note
    recovery = WebhookRecovery(runtime_two, processor_two)
    before = recovered_total()
    recovering = asyncio.create_task(recovery.recover(wa_webhook_events.c.id == event.id))
    await taken.wait()  # the recovery's group goes to the database
    if database_url.startswith("mariadb"):
        # Row locks: the recovery skips the event the live transaction holds, without waiting.
        async def recovered() -> bool:
            return recovering.done()

        await until(recovered, "the recovery to skip the held event")
        assert recovering.result() == 0
    # SQLite: the recovery waits for the one write lock, then finds the event processed.
    release.set()
    response = await live
    assert await recovering == 0
    assert recovered_total() == before
    assert response.status_code == 200
    assert (response.json()["messages"], response.json()["duplicates"]) == (1, 0)
    [event] = await rows(runtime_one.db, wa_webhook_events)
    assert (event.state, event.messages) == ("processed", 1)
    assert await count(runtime_one.db, crm_messages) == 1
    assert await count(runtime_one.db, crm_pending_statuses) == 1
    [convo] = await rows(runtime_one.db, crm_convos)
    assert convo.unread == 1


async def test_a_live_group_finding_its_delivery_recovered_answers_it_as_a_redelivery(
    apps: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    """The other way round: a process stored a delivery and has not begun processing it (held
    before its transaction) when another process's recovery applies it. The live group then
    finds it processed, applies nothing, and answers 200 as for a redelivery."""
    one, two = apps
    runtime_one, runtime_two = runtime_of(one), runtime_of(two)
    processor_one = get_whatsapp(runtime_one).processor
    taken, gate = asyncio.Event(), asyncio.Event()
    processor_one.hold = gated(taken, gate)
    live = asyncio.create_task(post_webhook(one, delivery(1)))
    await taken.wait()
    [event] = await rows(runtime_one.db, wa_webhook_events)
    processor_two = get_whatsapp(runtime_two).processor
    recovery = WebhookRecovery(runtime_two, processor_two)
    assert await recovery.recover(wa_webhook_events.c.id == event.id) == 1
    gate.set()
    response = await live
    assert response.status_code == 200
    assert (response.json()["messages"], response.json()["duplicates"]) == (0, 1)
    [event] = await rows(runtime_one.db, wa_webhook_events)
    assert (event.state, event.messages) == ("processed", 1)
    assert await count(runtime_one.db, crm_messages) == 1
    assert await count(runtime_one.db, crm_pending_statuses) == 1
    [convo] = await rows(runtime_one.db, crm_convos)
    assert convo.unread == 1
