# ruff: noqa: F811  (fixtures imported from tests/whatsapp/conftest.py are redefined as parameters)
"""CRM conversation lists through the cache: a page is loaded once and then served from the
cache, and every write path that changes what a list shows drops it at once (one test each);
a note does not; ``window_open`` follows the clock on a cached page; the TTL ages a page on the
test clock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import update

from core.clock import ManualClock
from service.db.tables.crm import crm_contacts, crm_convos
from service.metrics import REGISTRY
from service.support.history import ChatRecord, Customer, HistoryWriter
from service.support.historyfeed_memory import add_record
from service.whatsapp.crm import CONVO_LIST_CACHE
from service.whatsapp.outbound import SEND_QUEUE
from tests.fakes.graph_server import GraphServer
from tests.whatsapp import payloads as p
from tests.whatsapp.conftest import (  # noqa: F401  (fixtures)
    client,
    clock,
    graph,
    post_webhook,
    runtime_of,
    wa_settings,
)
from tests.whatsapp.jobrunner import drain
from tests.whatsapp.test_send import ADMIN, WA, inbound_convo, send


def outcome(name: str) -> float:
    labels = {"cache": CONVO_LIST_CACHE, "outcome": name}
    return REGISTRY.get_sample_value("kervan_cache_requests_total", labels) or 0.0


async def convos(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/admin/crm/convos", params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def cached(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """The list, read twice: the second read is a hit with the same answer."""
    first = await convos(client, **params)
    hits = outcome("hit")
    assert await convos(client, **params) == first
    assert outcome("hit") == hits + 1
    return first


async def test_a_page_is_loaded_once_then_served_from_the_cache(
    client: httpx.AsyncClient,
) -> None:
    await inbound_convo(client)
    misses, hits = outcome("miss"), outcome("hit")
    first = await convos(client)
    assert outcome("miss") == misses + 1
    again = await convos(client)
    assert again == first and outcome("hit") == hits + 1
    # Another filter is another page.
    assert await convos(client, status="closed") == []
    assert outcome("miss") == misses + 2


async def test_an_inbound_message_drops_the_lists(client: httpx.AsyncClient) -> None:
    await inbound_convo(client)
    assert len(await cached(client)) == 1
    other = p.inbound("905559998877", "Mehmet", p.text("905559998877", "wamid.IN2", "Merhaba"))
    assert (await post_webhook(client, other)).status_code == 200
    names = [c["contact_name"] for c in await convos(client)]
    assert sorted(names) == ["Ayşe", "Mehmet"]


async def test_an_agent_send_drops_the_lists(client: httpx.AsyncClient) -> None:
    convo_id = await inbound_convo(client)
    [before] = await cached(client)
    assert before["last_message"]["direction"] == "in"
    assert (await send(client, convo_id=convo_id, text="Kargoda")).status_code == 202
    [after] = await convos(client)
    assert (after["last_message"]["direction"], after["last_message"]["body"]) == ("out", "Kargoda")
    assert after["last_message"]["status"] == "queued"


async def test_a_send_outcome_drops_the_lists(
    client: httpx.AsyncClient, graph: GraphServer
) -> None:
    convo_id = await inbound_convo(client)
    assert (await send(client, convo_id=convo_id, text="Kargoda")).status_code == 202
    [queued] = await cached(client)
    assert queued["last_message"]["status"] == "queued"
    assert [a.outcome for a in await drain(runtime_of(client), [SEND_QUEUE])] == ["done"]
    [sent] = await convos(client)
    assert sent["last_message"]["status"] == "sent"


async def test_a_status_receipt_drops_the_lists(
    client: httpx.AsyncClient, graph: GraphServer
) -> None:
    convo_id = await inbound_convo(client)
    assert (await send(client, convo_id=convo_id, text="Kargoda")).status_code == 202
    await drain(runtime_of(client), [SEND_QUEUE])
    [sent] = await cached(client)
    assert sent["last_message"]["status"] == "sent"
    receipt = p.statuses(p.status("wamid.FAKE00000001", "delivered", recipient=WA))
    assert (await post_webhook(client, receipt)).status_code == 200
    [delivered] = await convos(client)
    assert delivered["last_message"]["status"] == "delivered"


async def test_closing_and_reopening_drop_the_lists(client: httpx.AsyncClient) -> None:
    convo_id = await inbound_convo(client)
    assert [c["status"] for c in await cached(client)] == ["open"]
    closed = await client.post(f"/admin/crm/convos/{convo_id}/close", headers=ADMIN)
    assert closed.status_code == 200
    assert [c["status"] for c in await cached(client)] == ["closed"]
    reopened = await client.post(f"/admin/crm/convos/{convo_id}/reopen", headers=ADMIN)
    assert reopened.status_code == 200
    assert [c["status"] for c in await convos(client)] == ["open"]


async def test_marking_read_drops_the_lists(client: httpx.AsyncClient) -> None:
    convo_id = await inbound_convo(client)
    assert [c["unread"] for c in await cached(client)] == [1]
    assert (await client.post(f"/admin/crm/convos/{convo_id}/read", headers=ADMIN)).is_success
    assert [c["unread"] for c in await convos(client)] == [0]


async def test_a_contact_change_drops_the_lists(client: httpx.AsyncClient) -> None:
    await inbound_convo(client)
    [convo] = await cached(client)
    changed = await client.patch(
        f"/admin/crm/contacts/{convo['contact_id']}", json={"name": "Ayşe K."}, headers=ADMIN
    )
    assert changed.status_code == 200
    assert [c["contact_name"] for c in await convos(client)] == ["Ayşe K."]


async def test_a_contact_delete_drops_the_lists(client: httpx.AsyncClient) -> None:
    await inbound_convo(client)
    [convo] = await cached(client)
    deleted = await client.delete(f"/admin/crm/contacts/{convo['contact_id']}", headers=ADMIN)
    assert deleted.status_code == 204
    assert await convos(client) == []


async def test_a_note_is_not_part_of_a_list_and_leaves_it_cached(
    client: httpx.AsyncClient,
) -> None:
    await inbound_convo(client)
    [convo] = await cached(client)
    note = await client.post(
        f"/admin/crm/contacts/{convo['contact_id']}/notes", json={"body": "VIP"}, headers=ADMIN
    )
    assert note.status_code == 201
    hits = outcome("hit")
    assert await convos(client) == [convo]
    assert outcome("hit") == hits + 1


async def test_a_web_chat_stored_by_support_drops_the_lists(client: httpx.AsyncClient) -> None:
    runtime = runtime_of(client)
    assert await cached(client) == []
    customer = Customer(id="cu_cachetest0001", name="Zeynep", language="tr")
    record = ChatRecord(customer, customer.id, "customer", "c1", "Merhaba", runtime.clock.now())
    assert runtime.backends.keyspace is not None
    add_record(runtime.backends.keyspace, record.encode())
    # No worker runs in these tests: the embedded feed's writer runs all the same.
    await runtime.facility(HistoryWriter).flush()
    [web] = await convos(client)
    assert (web["channel"], web["contact_name"]) == ("web", "Zeynep")


async def test_window_open_follows_the_clock_on_a_cached_page(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await inbound_convo(client)
    [opened] = await convos(client)
    closes = datetime.fromisoformat(opened["window_closes_at"]).timestamp()
    # A second before the window closes: cached while open, read again once it has closed.
    clock.advance(closes - 1 - clock.now())
    [fresh] = await convos(client)
    assert fresh["window_open"] is True
    clock.advance(2)
    hits = outcome("hit")
    [later] = await convos(client)
    assert outcome("hit") == hits + 1
    assert later["window_open"] is False
    assert later["window_closes_at"] == fresh["window_closes_at"]


async def test_a_page_ages_out_with_its_ttl_on_the_test_clock(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await inbound_convo(client)
    ttl = runtime_of(client).settings.cache_crm_convos_ttl_seconds
    [before] = await cached(client)
    # A write no path announces (straight to the database): the page stays until its TTL.
    async with runtime_of(client).db.begin() as conn:
        await conn.execute(update(crm_contacts).values(name="Renamed"))
        await conn.execute(update(crm_convos).values(unread=7))
    clock.advance(ttl - 1)
    assert await convos(client) == [before]
    clock.advance(1)
    [after] = await convos(client)
    assert (after["contact_name"], after["unread"]) == ("Renamed", 7)
