"""End to end with the real embedded queue worker (no hand-driven jobs)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx

from service.consent import store as consent_store
from service.consent.policy import ConsentPolicy
from service.db.tables.crm import crm_convos, crm_messages
from service.settings import Settings
from tests.fakes.graph_server import GraphServer
from tests.whatsapp import payloads as p
from tests.whatsapp.conftest import post_webhook, runtime_of
from tests.whatsapp.dbutil import rows

WA = "905321234567"
ADMIN = {"Authorization": "Bearer test-admin-key"}


async def test_admin_send_is_delivered_by_the_embedded_worker(
    wa_settings: Callable[..., Settings],
    make_client: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]],
    graph: GraphServer,
) -> None:
    settings = wa_settings(queue_embedded_worker=True, queue_poll_interval_seconds=0.05)
    async with make_client(settings) as client:
        now = int(time.time())
        payload = p.inbound(WA, "Ayşe", p.text(WA, "wamid.E1", "Selam", ts=now))
        assert (await post_webhook(client, payload)).status_code == 200
        runtime = runtime_of(client)
        assert runtime.queue is not None, "the queue module must be set up by the app"
        [convo] = await rows(runtime.db, crm_convos)
        async with runtime.db.begin() as conn:
            await consent_store.record(
                conn,
                f"contact:{convo.contact_id}",
                {"whatsapp": "granted"},
                source="admin",
                now=time.time(),
                policy=runtime.facility(ConsentPolicy),
            )
        response = await client.post(
            "/admin/wa/send", json={"convo_id": convo.id, "text": "Merhaba!"}, headers=ADMIN
        )
        assert response.status_code == 202, response.text
        status = "queued"
        for _ in range(200):  # waits for the worker; the bound only stops a hung test
            [out] = await rows(runtime.db, crm_messages, crm_messages.c.direction == "out")
            status = out.status
            if status != "queued":
                break
            await asyncio.sleep(0.05)
        assert status == "sent"
        assert graph.sent_messages()[0]["text"]["body"] == "Merhaba!"
