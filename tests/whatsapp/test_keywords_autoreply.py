# ruff: noqa: RUF001  (Turkish text legitimately contains the dotless i)
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest

from core.clock import ManualClock
from service.consent import store as consent_store
from service.consent.policy import ConsentPolicy
from service.db.tables.crm import crm_convos, crm_messages
from service.settings import Settings
from service.whatsapp.consent import whatsapp_allowed
from service.whatsapp.outbound import AUTOREPLY_QUEUE, SEND_QUEUE
from tests.fakes.graph_server import GraphServer
from tests.whatsapp import payloads as p
from tests.whatsapp.conftest import ensure_queue, post_webhook, runtime_of
from tests.whatsapp.dbutil import rows
from tests.whatsapp.jobrunner import drain

WA = "491701234567"


async def customer_says(client: httpx.AsyncClient, msg_id: str, text: str) -> None:
    response = await post_webhook(client, p.inbound(WA, "Jonas", p.text(WA, msg_id, text)))
    assert response.status_code == 200, response.text


async def consent_of(client: httpx.AsyncClient) -> bool:
    runtime = runtime_of(client)
    [convo] = await rows(runtime.db, crm_convos)
    async with runtime.db.connect() as conn:
        return await whatsapp_allowed(conn, convo.contact_id, runtime.clock.now())


async def outbound_bodies(client: httpx.AsyncClient) -> list[str]:
    db = runtime_of(client).db
    return [m.body for m in await rows(db, crm_messages, crm_messages.c.direction == "out")]


async def grant(client: httpx.AsyncClient) -> None:
    runtime = runtime_of(client)
    [convo] = await rows(runtime.db, crm_convos)
    async with runtime.db.begin() as conn:
        await consent_store.record(
            conn,
            f"contact:{convo.contact_id}",
            {"whatsapp": "granted"},
            source="admin",
            now=runtime.clock.now(),
            policy=runtime.facility(ConsentPolicy),
        )


@pytest.mark.parametrize("word", ["DUR", "unsubscribe"])  # every spelling: test_core_rules
async def test_stop_withdraws_consent_and_is_acknowledged_once(
    client: httpx.AsyncClient, graph: GraphServer, word: str
) -> None:
    await customer_says(client, "m1", "Merhaba")
    await grant(client)
    assert await consent_of(client)
    await customer_says(client, "m2", word)
    assert not await consent_of(client)
    await customer_says(client, "m3", word.lower())  # repeated: no second acknowledgement
    assert await outbound_bodies(client) == [
        "WhatsApp mesajlarımızdan çıkışınız yapıldı. Tekrar almak için START yazabilirsiniz."
    ]
    attempts = await drain(runtime_of(client), [SEND_QUEUE])
    assert [a.outcome for a in attempts] == ["done"]
    assert graph.sent_messages()[0]["context"] == {"message_id": "m2"}


async def test_start_grants_consent_again_and_answers_in_the_contact_language(
    client: httpx.AsyncClient,
) -> None:
    await customer_says(client, "m1", "Hallo")
    runtime = runtime_of(client)
    [convo] = await rows(runtime.db, crm_convos)
    patched = await client.patch(
        f"/admin/crm/contacts/{convo.contact_id}",
        json={"locale": "de"},
        headers={"Authorization": "Bearer test-admin-key"},
    )
    assert patched.status_code == 200
    await customer_says(client, "m2", "stop")
    await customer_says(client, "m3", "START")
    assert await consent_of(client)
    await customer_says(client, "m4", "start")  # already granted: not acknowledged again
    assert await outbound_bodies(client) == [
        "Sie erhalten keine WhatsApp-Nachrichten mehr von uns. Mit START melden Sie sich "
        "wieder an.",
        "Sie erhalten wieder WhatsApp-Nachrichten von uns. Mit STOPP melden Sie sich ab.",
    ]


async def test_auto_reply_is_a_no_op_by_default(client: httpx.AsyncClient) -> None:
    await customer_says(client, "m1", "kargo nerede?")
    assert await drain(runtime_of(client), [AUTOREPLY_QUEUE]) == []  # no job, no answer
    assert await outbound_bodies(client) == []


@asynccontextmanager
async def faq_client(
    wa_settings: Callable[..., Settings],
    make_client: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]],
    clock: ManualClock,
) -> AsyncIterator[httpx.AsyncClient]:
    settings = wa_settings(
        whatsapp_auto_reply=True, whatsapp_faq={"kargo": "Kargonuz 2 gün içinde teslim edilir."}
    )
    async with make_client(settings, clock=clock) as made:
        ensure_queue(runtime_of(made))
        yield made


async def test_faq_responder_answers_matching_questions(
    wa_settings: Callable[..., Settings],
    make_client: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]],
    clock: ManualClock,
    graph: GraphServer,
) -> None:
    async with faq_client(wa_settings, make_client, clock) as client:
        await customer_says(client, "m1", "Merhaba")
        await grant(client)
        await customer_says(client, "m2", "Kargo ne zaman gelir?")
        await customer_says(client, "m3", "teşekkürler")
        runtime = runtime_of(client)
        await drain(runtime, [AUTOREPLY_QUEUE])
        assert await outbound_bodies(client) == ["Kargonuz 2 gün içinde teslim edilir."]
        await drain(runtime, [SEND_QUEUE])
        [sent] = graph.sent_messages()
        assert sent["context"] == {"message_id": "m2"}


async def test_faq_responder_never_writes_without_consent(
    wa_settings: Callable[..., Settings],
    make_client: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]],
    clock: ManualClock,
) -> None:
    async with faq_client(wa_settings, make_client, clock) as client:
        await customer_says(client, "m1", "kargo?")
        attempts = await drain(runtime_of(client), [AUTOREPLY_QUEUE])
        assert [a.outcome for a in attempts] == ["done"]  # the job ran and chose not to answer
        assert await outbound_bodies(client) == []
