"""Group commit of webhook deliveries (issue 13): concurrent deliveries are stored in one
transaction and processed in one, with exactly the result of processing them one by one; one
bad delivery never fails its neighbours; a lone delivery is never delayed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest

from core.errors import StorageError
from service.backends import memory_backends
from service.db import Database
from service.db.tables.crm import (
    crm_contacts,
    crm_convos,
    crm_messages,
    crm_pending_statuses,
    wa_webhook_events,
)
from service.db.types import from_timestamp
from service.metrics import REGISTRY
from service.whatsapp import webhook as webhook_module
from service.whatsapp.consent import whatsapp_allowed
from service.whatsapp.facility import get_whatsapp
from service.whatsapp.group_commit import BURST_GAP_SECONDS, GroupRunner
from service.whatsapp.store import StoredInbound
from service.whatsapp.webhook import WebhookProcessor
from tests.whatsapp import payloads as p
from tests.whatsapp.conftest import START, post_webhook, runtime_of
from tests.whatsapp.dbutil import count, rows, seed_outbound


@asynccontextmanager
async def held(processor: WebhookProcessor) -> AsyncIterator[asyncio.Event]:
    """Processing waits (after its group was taken) until the yielded event is set."""
    gate = asyncio.Event()
    previous = processor.hold

    async def hold() -> None:
        await gate.wait()

    processor.hold = hold
    try:
        yield gate
    finally:
        gate.set()
        processor.hold = previous


async def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def scenario(prefix: str) -> list[Any]:
    """Deliveries touching every part of processing; ids and senders carry ``prefix``."""
    w1, w2, w3 = f"{prefix}901", f"{prefix}902", f"{prefix}903"

    def mid(name: str) -> str:
        return f"wamid.{prefix}.{name}"

    return [
        p.inbound(w1, "Ayşe", p.text(w1, mid("m1"), "merhaba", ts=1_700_000_100)),
        p.inbound(
            w2,
            "Bora",
            p.text(w2, mid("m2"), "iki", ts=1_700_000_110),
            p.text(w2, mid("m3"), "üç", ts=1_700_000_120),
        ),
        # A redelivered message beside a new one, and a new profile name.
        p.inbound(
            w1,
            "Ayşe K.",
            p.text(w1, mid("m1"), "merhaba", ts=1_700_000_100),
            p.text(w1, mid("m4"), "dört", ts=1_700_000_130),
        ),
        # Out of order statuses, within one delivery and across deliveries.
        p.statuses(p.status(mid("out1"), "read", ts=1_700_000_300)),
        p.statuses(
            p.status(mid("out1"), "delivered", ts=1_700_000_200),
            p.status(mid("out1"), "sent", ts=1_700_000_100),
            p.status(mid("unknown"), "delivered", ts=1_700_000_250),
        ),
        # A new customer opts out and in again: consent changes and acknowledgement jobs.
        p.inbound(w3, "Cem", p.text(w3, mid("m5"), "STOP", ts=1_700_000_140)),
        p.inbound(w3, "Cem", p.text(w3, mid("m6"), "START", ts=1_700_000_150)),
        b"{this is not json",
        p.envelope(
            p.value(
                contacts=[p.contact(w2, "Bora")],
                messages=[p.text(w2, mid("m2"), "iki", ts=1_700_000_110)],
                statuses=[
                    p.status(
                        mid("out2"), "failed", ts=1_700_000_400, errors=[p.RE_ENGAGEMENT_ERROR]
                    )
                ],
            )
        ),
        p.inbound(w2, "Bora", p.text(w2, mid("m7"), "yedi", ts=1_700_000_050)),
    ]


def sorted_(items: Any) -> list[Any]:
    """Sorted by representation: the tuples hold None beside strings and times."""
    return sorted(items, key=repr)


def body_of(payload: Any) -> bytes:
    return payload if isinstance(payload, bytes) else orjson.dumps(payload)


async def seed(prefix: str, client: httpx.AsyncClient) -> None:
    db = runtime_of(client).db
    await seed_outbound(db, f"wamid.{prefix}.out1", wa_id=f"{prefix}901")
    await seed_outbound(db, f"wamid.{prefix}.out2", wa_id=f"{prefix}902")


def answer(response: httpx.Response) -> tuple[int, Any]:
    data = response.json()
    if response.status_code != 200:
        return response.status_code, data["error"]["code"]
    return 200, (data["messages"], data["duplicates"], data["statuses"])


async def state(client: httpx.AsyncClient, prefix: str) -> dict[str, Any]:
    """Everything the deliveries of ``prefix`` left behind, with ids replaced by names."""
    runtime = runtime_of(client)
    db = runtime.db

    def strip(value: str | None) -> str | None:
        return None if value is None else value.replace(prefix, "*")

    contacts = {c.id: c for c in await rows(db, crm_contacts) if (c.wa_id or "").startswith(prefix)}
    convos = {c.id: c for c in await rows(db, crm_convos) if c.contact_id in contacts}
    messages = [m for m in await rows(db, crm_messages) if m.convo_id in convos]
    async with db.connect() as conn:
        allowed = {
            strip(c.wa_id): await whatsapp_allowed(conn, c.id, runtime.clock.now())
            for c in contacts.values()
        }
    return {
        "contacts": sorted_((strip(c.wa_id), c.name, c.deleted_at) for c in contacts.values()),
        "convos": sorted_(
            (
                strip(contacts[c.contact_id].wa_id),
                c.status,
                c.unread,
                c.last_inbound_at,
                c.last_activity_at,
            )
            for c in convos.values()
        ),
        "messages": sorted_(
            (
                strip(contacts[convos[m.convo_id].contact_id].wa_id),
                strip(m.provider_id),
                m.direction,
                m.kind,
                m.body,
                m.status,
                m.created_at,
                m.sent_at,
                m.delivered_at,
                m.read_at,
                m.failed_at,
                orjson.dumps(m.error, option=orjson.OPT_SORT_KEYS),
            )
            for m in messages
        ),
        "parked": sorted_(
            (strip(s.provider_id), s.status, s.status_at)
            for s in await rows(db, crm_pending_statuses)
            if s.provider_id.startswith(f"wamid.{prefix}.")
        ),
        "consent": allowed,
    }


async def test_a_group_leaves_what_one_by_one_leaves(client: httpx.AsyncClient) -> None:
    runtime = runtime_of(client)
    processor = get_whatsapp(runtime).processor
    grouped = scenario("A")
    await seed("A", client)
    async with held(processor) as gate:
        # The first delivery is taken alone and held; all others queue behind it, stored.
        first = asyncio.create_task(post_webhook(client, grouped[0]))
        await wait_until(lambda: count(runtime.db, wa_webhook_events), "the first delivery")
        rest = [asyncio.create_task(post_webhook(client, body)) for body in grouped[1:]]

        async def all_stored() -> bool:
            return await count(runtime.db, wa_webhook_events) == len(grouped)

        await wait_until(all_stored, "every delivery to be stored")
        assert {e.state for e in await rows(runtime.db, wa_webhook_events)} == {"received"}
        gate.set()
        responses = await asyncio.gather(first, *rest)
    # The order the group processed them in is the order they were stored in.
    bodies = [body_of(payload) for payload in grouped]
    stored_order = [
        bodies.index(webhook_module.decode_raw(e.body, e.body_encoding))
        for e in await rows(runtime.db, wa_webhook_events)
    ]
    assert sorted(stored_order) == list(range(len(grouped)))
    by_index = dict(zip(range(len(grouped)), responses, strict=True))

    one_by_one = scenario("B")
    await seed("B", client)
    sequential = {index: await post_webhook(client, one_by_one[index]) for index in stored_order}

    assert {i: answer(r) for i, r in by_index.items()} == {
        i: answer(r) for i, r in sequential.items()
    }
    grouped_state = await state(client, "A")
    assert grouped_state == await state(client, "B")
    # What the comparison covers: 7 inbound messages (one redelivered twice), 2 outbound with
    # their statuses, 2 keyword acknowledgements, one parked status, consent given back.
    assert len(grouped_state["messages"]) == 11
    assert [c[2] for c in grouped_state["convos"]] == [2, 3, 2]
    assert grouped_state["parked"] == [
        ("wamid.*.unknown", "delivered", from_timestamp(1_700_000_250))
    ]
    assert grouped_state["consent"]["*903"] is True
    [out1] = [m for m in grouped_state["messages"] if m[1] == "wamid.*.out1"]
    assert out1[5:10] == (
        "read",
        from_timestamp(1.7e9),
        from_timestamp(1.7e9),
        from_timestamp(1_700_000_200),
        from_timestamp(1_700_000_300),
    )
    events = await rows(runtime.db, wa_webhook_events)
    assert sorted(e.state for e in events) == sorted(["processed"] * 18 + ["rejected"] * 2)


async def test_one_failing_delivery_does_not_fail_its_neighbours(
    client: httpx.AsyncClient,
) -> None:
    runtime = runtime_of(client)
    processor = get_whatsapp(runtime).processor

    async def fails_on_boom(
        _conn: object, stored: list[StoredInbound], _now: object
    ) -> list[dict[str, Any]]:
        if any(item.event.body == "boom" for item in stored):
            raise StorageError("the hook broke")
        return []

    processor.hooks.append(fails_on_boom)
    payloads = [
        p.inbound(
            f"90555{i:04d}", "N", p.text(f"90555{i:04d}", f"wamid.F{i}", "boom" if i == 3 else "hi")
        )
        for i in range(8)
    ]
    async with held(processor) as gate:
        first = asyncio.create_task(post_webhook(client, payloads[0]))
        await wait_until(lambda: count(runtime.db, wa_webhook_events), "the first delivery")
        rest = [asyncio.create_task(post_webhook(client, body)) for body in payloads[1:]]

        async def all_stored() -> bool:
            return await count(runtime.db, wa_webhook_events) == len(payloads)

        await wait_until(all_stored, "every delivery to be stored")
        gate.set()
        responses = await asyncio.gather(first, *rest)
    processor.hooks.remove(fails_on_boom)
    assert [r.status_code for r in responses] == [200, 200, 200, 503, 200, 200, 200, 200]
    states = {
        webhook_module.decode_raw(e.body, e.body_encoding): e.state
        for e in await rows(runtime.db, wa_webhook_events)
    }
    assert [states[orjson.dumps(body)] for body in payloads] == [
        "processed",
        "processed",
        "processed",
        "failed",
        "processed",
        "processed",
        "processed",
        "processed",
    ]
    stored = {m.provider_id for m in await rows(runtime.db, crm_messages)}
    assert stored == {f"wamid.F{i}" for i in range(8) if i != 3}


async def test_concurrent_deliveries_share_transactions(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups: list[int] = []
    original = webhook_module._insert_events

    async def counting(conn: Any, rows_: list[dict[str, Any]]) -> list[int]:
        groups.append(len(rows_))
        return await original(conn, rows_)

    monkeypatch.setattr(webhook_module, "_insert_events", counting)

    def sample(stage: str, name: str) -> float:
        return (
            REGISTRY.get_sample_value(
                f"kervan_whatsapp_webhook_group_size_{name}", {"stage": stage}
            )
            or 0.0
        )

    before = {
        stage: (sample(stage, "count"), sample(stage, "sum")) for stage in ("store", "process")
    }
    payloads = [
        p.inbound(f"90544{i:04d}", f"C{i}", p.text(f"90544{i:04d}", f"wamid.G{i}", "hi"))
        for i in range(40)
    ]
    responses = await asyncio.gather(*(post_webhook(client, body) for body in payloads))
    assert [r.status_code for r in responses] == [200] * 40
    assert len({r.json()["event_id"] for r in responses}) == 40
    assert all(r.json()["messages"] == 1 for r in responses)
    assert sum(groups) == 40 and max(groups) > 1, groups
    for stage in ("store", "process"):
        groups_run = sample(stage, "count") - before[stage][0]
        assert sample(stage, "sum") - before[stage][1] == 40
        assert groups_run < 40, stage
    db = runtime_of(client).db
    assert await count(db, crm_messages) == 40
    assert {e.state for e in await rows(db, wa_webhook_events)} == {"processed"}
    assert {c.unread for c in await rows(db, crm_convos)} == {1}


async def test_a_failing_store_group_stores_each_on_its_own(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = webhook_module._insert_events
    refused: list[int] = []

    async def refuses_groups(conn: Any, rows_: list[dict[str, Any]]) -> list[int]:
        if len(rows_) > 1:
            refused.append(len(rows_))
            raise StorageError("a group is refused")
        return await original(conn, rows_)

    monkeypatch.setattr(webhook_module, "_insert_events", refuses_groups)
    processor = WebhookProcessor(database, memory_backends("wa-store"), _clock())
    try:
        # All six are queued before the store stage first runs: one group of six.
        outcomes = await asyncio.gather(
            *(
                processor.handle(
                    orjson.dumps(p.inbound("905", "S", p.text("905", f"wamid.S{i}", "hi")))
                )
                for i in range(6)
            )
        )
    finally:
        await processor.close()
    assert refused == [6]
    assert sorted(o.event_id for o in outcomes) == [
        e.id for e in await rows(database, wa_webhook_events)
    ]
    assert [len(o.stored) for o in outcomes] == [1] * 6
    assert await count(database, crm_messages) == 6


async def test_a_lone_delivery_is_never_delayed(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even with a long group wait, a delivery that finds the stage idle starts at once: its
    stage never decides to wait for company (the decisions are recorded, not timed)."""
    decisions: list[bool] = []
    decide = GroupRunner._in_burst

    def recorded(runner: GroupRunner[Any]) -> bool:
        decisions.append(decide(runner))
        return decisions[-1]

    monkeypatch.setattr(GroupRunner, "_in_burst", recorded)
    processor = WebhookProcessor(database, memory_backends("wa-lone"), _clock(), group_wait=30.0)
    try:
        for n in range(3):
            await processor.handle(
                orjson.dumps(p.inbound("905", "A", p.text("905", f"wamid.L{n}", "hi")))
            )
        assert not any(decisions)
        # A burst, then quiet: the next lone delivery does not wait for company either.
        burst = [
            processor.handle(orjson.dumps(p.inbound("906", "B", p.text("906", f"wamid.B{n}", "x"))))
            for n in range(6)
        ]
        outcomes = await asyncio.gather(*burst)
        assert sum(len(o.stored) for o in outcomes) == 6
        await asyncio.sleep(BURST_GAP_SECONDS * 2)
        decisions.clear()
        await processor.handle(orjson.dumps(p.inbound("905", "A", p.text("905", "wamid.L9", "hi"))))
        assert not any(decisions)
    finally:
        await processor.close()


def _clock() -> Any:
    from core.clock import ManualClock

    return ManualClock(START + 3600)


async def test_a_deadlocked_group_is_retried_as_a_group(client: httpx.AsyncClient) -> None:
    runtime = runtime_of(client)
    processor = get_whatsapp(runtime).processor
    calls: list[int] = []

    async def deadlocked_once(
        _conn: object, stored: list[StoredInbound], _now: object
    ) -> list[dict[str, Any]]:
        calls.append(len(stored))
        if len(calls) == 2:  # the first call is the lone first delivery's
            raise StorageError(
                "database error: OperationalError: (1213, 'Deadlock found when trying to get "
                "lock; try restarting transaction')"
            )
        return []

    processor.hooks.append(deadlocked_once)
    payloads = [
        p.inbound(f"90522{i:04d}", "D", p.text(f"90522{i:04d}", f"wamid.DL{i}", "hi"))
        for i in range(6)
    ]
    async with held(processor) as gate:
        first = asyncio.create_task(post_webhook(client, payloads[0]))
        await wait_until(lambda: count(runtime.db, wa_webhook_events), "the first delivery")
        rest = [asyncio.create_task(post_webhook(client, body)) for body in payloads[1:]]

        async def all_stored() -> bool:
            return await count(runtime.db, wa_webhook_events) == len(payloads)

        await wait_until(all_stored, "every delivery to be stored")
        gate.set()
        responses = await asyncio.gather(first, *rest)
    processor.hooks.remove(deadlocked_once)
    assert [r.status_code for r in responses] == [200] * 6
    assert calls == [1, 5, 5]  # the group of five failed once, then committed whole
    assert await count(runtime.db, crm_messages) == 6
