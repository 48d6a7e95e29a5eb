from __future__ import annotations

import httpx
import orjson
from sqlalchemy import update

from core.clock import ManualClock
from core.whatsapp.signature import sign_body
from service.db.tables.crm import crm_messages, crm_pending_statuses, wa_webhook_events
from service.whatsapp.retention import RetentionTask
from tests.whatsapp import payloads as p
from tests.whatsapp.conftest import APP_SECRET, post_webhook, runtime_of
from tests.whatsapp.dbutil import count, rows

WA = "905321234567"
DAY = 86400.0


async def test_old_processed_events_and_parked_statuses_are_purged(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    runtime = runtime_of(client)
    await post_webhook(client, p.inbound(WA, "A", p.text(WA, "wamid.1", "old")))
    await post_webhook(client, p.statuses(p.status("wamid.GONE", "delivered")))
    body = b"not json"
    await client.post(
        "/webhooks/wa", content=body, headers={"X-Hub-Signature-256": sign_body(APP_SECRET, body)}
    )
    first = (await rows(runtime.db, wa_webhook_events))[0]
    async with runtime.db.begin() as conn:  # one delivery that failed: kept for replay
        await conn.execute(
            update(wa_webhook_events)
            .where(wa_webhook_events.c.id == first.id)
            .values(state="failed")
        )
    clock.advance(8 * DAY)
    await post_webhook(client, p.inbound(WA, "A", p.text(WA, "wamid.2", "recent")))
    task = RetentionTask(runtime)
    assert await task.run_once() == (0, 1)  # statuses go after 7 days, events after 30
    clock.advance(25 * DAY)
    assert await task.run_once() == (2, 0)
    events = await rows(runtime.db, wa_webhook_events)
    assert [e.state for e in events] == ["failed", "processed"]
    assert (
        orjson.loads(events[1].body)["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
        == "wamid.2"
    )
    assert await count(runtime.db, crm_pending_statuses) == 0
    assert await count(runtime.db, crm_messages) == 2  # the CRM itself is never purged
