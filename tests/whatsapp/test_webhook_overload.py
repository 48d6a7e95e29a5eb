"""The group-commit pipeline holds at most KERVAN_WHATSAPP_WEBHOOK_MAX_PENDING deliveries (issue
13): one more is refused with 503 and Retry-After before anything of it is stored, and Meta's
redelivery goes through once there is room again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx

from core.clock import ManualClock
from service.db.tables.crm import crm_messages, wa_webhook_events
from service.metrics import REGISTRY
from service.settings import Settings
from service.whatsapp.facility import get_whatsapp
from tests.whatsapp import payloads as p
from tests.whatsapp.conftest import post_webhook, runtime_of
from tests.whatsapp.dbutil import count, rows

MAX_PENDING = 4


def delivery(n: int) -> dict[str, Any]:
    wa_id = f"90537{n:07d}"
    return p.inbound(wa_id, "Yoğun", p.text(wa_id, f"wamid.OV{n}", "selam"))


def overloaded_total() -> float:
    return (
        REGISTRY.get_sample_value("kervan_whatsapp_webhooks_total", {"outcome": "overloaded"})
        or 0.0
    )


async def until(predicate: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 30
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_beyond_max_pending_a_delivery_is_refused_before_it_is_stored(
    wa_settings: Callable[..., Settings],
    make_client: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]],
    clock: ManualClock,
    tmp_path: Path,
) -> None:
    hold = tmp_path / "hold-processing"
    settings = wa_settings(whatsapp_webhook_max_pending=MAX_PENDING, whatsapp_test_hold_file=hold)
    async with make_client(settings, clock=clock) as client:
        runtime = runtime_of(client)
        processor = get_whatsapp(runtime).processor
        # The test seam holds processing (storing goes on): the pipeline fills up.
        hold.touch()
        accepted = [
            asyncio.create_task(post_webhook(client, delivery(n))) for n in range(MAX_PENDING)
        ]

        async def all_stored() -> bool:
            return await count(runtime.db, wa_webhook_events) == MAX_PENDING

        await until(all_stored, "the deliveries that fill the pipeline to be stored")
        before = overloaded_total()
        refused = asyncio.create_task(post_webhook(client, delivery(MAX_PENDING)))
        # Answered while the others are held, and never stored.
        while not refused.done():
            assert await count(runtime.db, wa_webhook_events) == MAX_PENDING
            await asyncio.sleep(0.01)
        response = refused.result()
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "2"
        assert response.json() == {
            "error": {
                "code": "overloaded",
                "message": "too many webhook deliveries are pending; deliver again later",
                "details": {"max_pending": MAX_PENDING, "retry_after": 2},
            }
        }
        assert overloaded_total() - before == 1
        assert not any(task.done() for task in accepted)
        assert processor.pending == MAX_PENDING
        assert {e.state for e in await rows(runtime.db, wa_webhook_events)} == {"received"}

        hold.unlink()
        answers = await asyncio.gather(*accepted)
        assert [r.status_code for r in answers] == [200] * MAX_PENDING
        assert processor.pending == 0
        # Room again: Meta's redelivery of the refused one goes through.
        again = await post_webhook(client, delivery(MAX_PENDING))
        assert again.status_code == 200
        assert again.json()["messages"] == 1
        assert await count(runtime.db, wa_webhook_events) == MAX_PENDING + 1
        assert await count(runtime.db, crm_messages) == MAX_PENDING + 1
        assert {e.state for e in await rows(runtime.db, wa_webhook_events)} == {"processed"}


async def test_a_delivery_whose_requester_left_stays_pending_until_it_is_processed(
    wa_settings: Callable[..., Settings],
    make_client: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]],
    clock: ManualClock,
    tmp_path: Path,
) -> None:
    """The bound counts work, not waiting requesters: a delivery whose request went away is
    still stored and processed, and holds its place until then."""
    hold = tmp_path / "hold-processing"
    settings = wa_settings(whatsapp_webhook_max_pending=1, whatsapp_test_hold_file=hold)
    async with make_client(settings, clock=clock) as client:
        runtime = runtime_of(client)
        processor = get_whatsapp(runtime).processor
        hold.touch()
        gone = asyncio.create_task(post_webhook(client, delivery(0)))

        async def stored() -> bool:
            return await count(runtime.db, wa_webhook_events) == 1

        await until(stored, "the delivery to be stored")
        gone.cancel()
        await asyncio.gather(gone, return_exceptions=True)
        assert processor.pending == 1
        refused = await post_webhook(client, delivery(1))
        assert refused.status_code == 503
        hold.unlink()

        async def processed() -> bool:
            return processor.pending == 0

        await until(processed, "the abandoned delivery to be processed")
        [event] = await rows(runtime.db, wa_webhook_events)
        assert event.state == "processed"
        assert (await post_webhook(client, delivery(1))).status_code == 200
