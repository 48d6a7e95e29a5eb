# ruff: noqa: RUF001  (Turkish text legitimately contains the dotless i)
from __future__ import annotations

import httpx
import pytest

from core.clock import ManualClock
from core.whatsapp.texts import TEXT_MAX_CHARS
from core.whatsapp.unsubscribe import read_token
from service.consent import store as consent_store
from service.consent.policy import ConsentPolicy
from service.db.tables.crm import crm_convos, crm_messages
from service.whatsapp.consent import whatsapp_allowed
from service.whatsapp.outbound import READ_QUEUE, SEND_QUEUE
from tests.fakes.graph_server import Failure, GraphServer
from tests.whatsapp import payloads as p
from tests.whatsapp.conftest import post_webhook, runtime_of
from tests.whatsapp.dbutil import rows
from tests.whatsapp.jobrunner import drain

WA = "905321234567"
ADMIN = {"Authorization": "Bearer test-admin-key"}


async def inbound_convo(
    client: httpx.AsyncClient, *, consent: bool = True, locale: str = "tr"
) -> int:
    """A conversation opened by a customer message; optionally with WhatsApp consent."""
    response = await post_webhook(client, p.inbound(WA, "Ayşe", p.text(WA, "wamid.IN1", "Selam")))
    assert response.status_code == 200
    runtime = runtime_of(client)
    [convo] = await rows(runtime.db, crm_convos)
    if consent:
        async with runtime.db.begin() as conn:
            await consent_store.record(
                conn,
                f"contact:{convo.contact_id}",
                {"whatsapp": "granted"},
                source="admin",
                now=runtime.clock.now(),
                policy=runtime.facility(ConsentPolicy),
            )
    if locale != "tr":
        await client.patch(
            f"/admin/crm/contacts/{convo.contact_id}", json={"locale": locale}, headers=ADMIN
        )
    return int(convo.id)


async def send(client: httpx.AsyncClient, **body: object) -> httpx.Response:
    return await client.post("/admin/wa/send", json=body, headers=ADMIN)


async def test_send_requires_admin(client: httpx.AsyncClient) -> None:
    response = await client.post("/admin/wa/send", json={"convo_id": 1, "text": "x"})
    assert response.status_code == 401


async def test_text_is_queued_then_sent_through_the_graph_api(
    client: httpx.AsyncClient, graph: GraphServer
) -> None:
    convo_id = await inbound_convo(client)
    response = await send(client, convo_id=convo_id, text="Siparişiniz yolda")
    assert response.status_code == 202, response.text
    queued = response.json()
    assert (queued["status"], queued["direction"], queued["body"]) == (
        "queued",
        "out",
        "Siparişiniz yolda",
    )
    runtime = runtime_of(client)
    attempts = await drain(runtime, [SEND_QUEUE])
    assert [a.outcome for a in attempts] == ["done"]
    [request] = graph.requests
    assert request.path == f"/{graph.version}/{graph.phone_number_id}/messages"
    assert request.headers["Authorization"] == f"Bearer {graph.token}"
    assert request.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": WA,
        "type": "text",
        "text": {"body": "Siparişiniz yolda", "preview_url": False},
    }
    [out] = await rows(runtime.db, crm_messages, crm_messages.c.direction == "out")
    assert out.status == "sent" and out.provider_id == "wamid.FAKE00000001"
    assert out.sent_at is not None


async def test_no_consent_is_refused_and_nothing_queued(client: httpx.AsyncClient) -> None:
    convo_id = await inbound_convo(client, consent=False)
    response = await send(client, convo_id=convo_id, text="hi")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "consent_required"
    assert await rows(runtime_of(client).db, crm_messages, crm_messages.c.direction == "out") == []


async def test_free_text_outside_the_window_needs_a_template(
    client: httpx.AsyncClient, clock: ManualClock, graph: GraphServer
) -> None:
    convo_id = await inbound_convo(client)
    clock.advance(24 * 3600)
    response = await send(client, convo_id=convo_id, text="hi")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "template_required"
    assert "24 hours" in error["message"]
    assert error["details"]["window_closed_at"].startswith("2023-11-15")
    template = {"name": "order_update", "language": "tr", "components": []}
    response = await send(client, convo_id=convo_id, template=template)
    assert response.status_code == 202
    await drain(runtime_of(client), [SEND_QUEUE])
    assert graph.sent_messages()[0]["template"] == {
        "name": "order_update",
        "language": {"code": "tr"},
    }


async def test_the_window_belongs_to_the_customer_not_to_one_conversation(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    first = await inbound_convo(client)
    assert (await client.post(f"/admin/crm/convos/{first}/close", headers=ADMIN)).is_success
    clock.advance(25 * 3600)
    again = p.inbound(WA, "Ayşe", p.text(WA, "wamid.IN2", "Tekrar", ts=int(clock.now())))
    assert (await post_webhook(client, again)).status_code == 200
    [second] = [c.id for c in await rows(runtime_of(client).db, crm_convos) if c.id != first]
    assert (await client.post(f"/admin/crm/convos/{second}/close", headers=ADMIN)).is_success
    assert (await client.post(f"/admin/crm/convos/{first}/reopen", headers=ADMIN)).is_success
    # The customer wrote an hour ago (in the other conversation): free text is allowed.
    clock.advance(3600)
    response = await send(client, convo_id=first, text="Merhaba")
    assert response.status_code == 202, response.text
    clock.advance(23 * 3600)
    assert (await send(client, convo_id=first, text="Hâlâ?")).status_code == 409


async def test_invalid_send_bodies_are_422(client: httpx.AsyncClient) -> None:
    bodies: list[dict[str, object]] = [
        {"convo_id": 1},
        {"convo_id": 1, "text": "a", "template": {"name": "x", "language": "tr"}},
        {"convo_id": 0, "text": "a"},
        {"convo_id": 1, "text": ""},
        {"convo_id": 1, "text": "x" * 5000},
        {"convo_id": 1, "template": {"name": "Bad Name", "language": "tr"}},
        {"convo_id": 1, "text": "a", "extra": 1},
    ]
    for body in bodies:
        response = await send(client, **body)
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] == "validation_failed"
    malformed = await client.post("/admin/wa/send", content=b"{", headers=ADMIN)
    assert malformed.status_code == 400


async def test_unknown_conversation_is_404(client: httpx.AsyncClient) -> None:
    assert (await send(client, convo_id=999, text="x")).status_code == 404


@pytest.mark.parametrize(
    ("locale", "line"),
    [
        ("tr", "Bu mesajları artık almak istemiyorsanız: https://shop.example/u/"),
        ("de", "Wenn Sie diese Nachrichten nicht mehr erhalten möchten: https://shop.example/u/"),
        ("en", "To stop receiving these messages: https://shop.example/u/"),
    ],
)
async def test_marketing_text_carries_the_unsubscribe_link(
    client: httpx.AsyncClient, locale: str, line: str
) -> None:
    convo_id = await inbound_convo(client, locale=locale)
    response = await send(client, convo_id=convo_id, text="Kampanya!", marketing=True)
    body = response.json()["body"]
    assert body.startswith("Kampanya!\n\n" + line)
    token = body.rsplit("/u/", 1)[1]
    runtime = runtime_of(client)
    [convo] = await rows(runtime.db, crm_convos)
    assert read_token("unsubscribe-secret", token) == convo.contact_id
    # The link withdraws consent and answers in the contact's language.
    page = await client.get(f"/u/{token}")
    assert page.status_code == 200
    assert f'lang="{locale}"' in page.text
    async with runtime.db.connect() as conn:
        assert not await whatsapp_allowed(conn, convo.contact_id, runtime.clock.now())
    assert (await send(client, convo_id=convo_id, text="again")).status_code == 403


async def test_marketing_text_too_long_for_its_unsubscribe_line_is_422(
    client: httpx.AsyncClient,
) -> None:
    convo_id = await inbound_convo(client)
    longest = "x" * TEXT_MAX_CHARS
    response = await send(client, convo_id=convo_id, text=longest, marketing=True)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "text_too_long"
    room = error["details"]["max_text_chars"]
    assert 0 < room < TEXT_MAX_CHARS
    assert await rows(runtime_of(client).db, crm_messages, crm_messages.c.direction == "out") == []
    # Exactly the room left for the text fits, line included; plain texts keep the whole limit.
    fits = await send(client, convo_id=convo_id, text="x" * room, marketing=True)
    assert fits.status_code == 202, fits.text
    assert len(fits.json()["body"]) == TEXT_MAX_CHARS
    assert (await send(client, convo_id=convo_id, text=longest)).status_code == 202


async def test_forged_unsubscribe_link_is_404(client: httpx.AsyncClient) -> None:
    page = await client.get("/u/1.AAAAAAAAAAAAAAAA", headers={"Accept-Language": "de-DE,de"})
    assert page.status_code == 404
    assert "Ungültiger Link" in page.text


async def test_throttling_defers_and_server_errors_retry_until_sent(
    client: httpx.AsyncClient, graph: GraphServer
) -> None:
    convo_id = await inbound_convo(client)
    await send(client, convo_id=convo_id, text="hi")
    graph.fail_next(Failure(http_status=429, code=130429))
    graph.fail_next(Failure(http_status=503))
    graph.fail_next(Failure(http_status=502, garbage=True))
    attempts = await drain(runtime_of(client), [SEND_QUEUE])
    assert [a.outcome for a in attempts] == ["deferred", "retry", "retry", "done"]
    [out] = await rows(runtime_of(client).db, crm_messages, crm_messages.c.direction == "out")
    assert out.status == "sent"


async def test_timeout_is_retried(client: httpx.AsyncClient, graph: GraphServer) -> None:
    convo_id = await inbound_convo(client)
    await send(client, convo_id=convo_id, text="hi")
    graph.fail_next(Failure(delay=1.0))  # the client's timeout is 0.5 s
    attempts = await drain(runtime_of(client), [SEND_QUEUE])
    assert [a.outcome for a in attempts] == ["retry", "done"]
    assert "timed out" in attempts[0].error


async def test_re_engagement_error_fails_the_message_as_needs_template(
    client: httpx.AsyncClient, graph: GraphServer
) -> None:
    convo_id = await inbound_convo(client)
    await send(client, convo_id=convo_id, text="hi")
    graph.fail_next(Failure(http_status=400, code=131047))
    attempts = await drain(runtime_of(client), [SEND_QUEUE])
    assert [a.outcome for a in attempts] == ["dead"]
    assert attempts[0].error.startswith("needs_template")
    [out] = await rows(runtime_of(client).db, crm_messages, crm_messages.c.direction == "out")
    assert out.status == "failed"
    assert out.error["action"] == "needs_template"
    assert out.error["code"] == 131047


async def test_invalid_parameter_is_not_retried(
    client: httpx.AsyncClient, graph: GraphServer
) -> None:
    convo_id = await inbound_convo(client)
    await send(client, convo_id=convo_id, text="hi")
    graph.fail_next(Failure(http_status=400, code=100))
    attempts = await drain(runtime_of(client), [SEND_QUEUE])
    assert [a.outcome for a in attempts] == ["dead"]
    assert len(graph.requests) == 1


async def test_wrong_token_is_not_retried(client: httpx.AsyncClient, graph: GraphServer) -> None:
    graph.token = "rotated-token"
    convo_id = await inbound_convo(client)
    await send(client, convo_id=convo_id, text="hi")
    attempts = await drain(runtime_of(client), [SEND_QUEUE])
    assert [a.outcome for a in attempts] == ["dead"]
    [out] = await rows(runtime_of(client).db, crm_messages, crm_messages.c.direction == "out")
    assert (out.status, out.error["code"], out.error["action"]) == ("failed", 190, "no_retry")


async def test_persistent_server_errors_fail_after_the_last_attempt(
    client: httpx.AsyncClient, graph: GraphServer
) -> None:
    convo_id = await inbound_convo(client)
    await send(client, convo_id=convo_id, text="hi")
    graph.fail_next(Failure(http_status=500), count=20)
    attempts = await drain(runtime_of(client), [SEND_QUEUE])
    assert [a.outcome for a in attempts][-1] == "dead"
    assert len(attempts) == runtime_of(client).settings.whatsapp_send_max_attempts
    [out] = await rows(runtime_of(client).db, crm_messages, crm_messages.c.direction == "out")
    assert out.status == "failed" and out.error["action"] == "retry"


async def test_status_webhook_before_the_send_commits_is_applied(
    client: httpx.AsyncClient, graph: GraphServer
) -> None:
    convo_id = await inbound_convo(client)
    await send(client, convo_id=convo_id, text="hi")
    # WhatsApp can report delivery before our job recorded the id: park, then apply.
    await post_webhook(
        client, p.statuses(p.status("wamid.FAKE00000001", "delivered", ts=1_700_003_000))
    )
    await drain(runtime_of(client), [SEND_QUEUE])
    [out] = await rows(runtime_of(client).db, crm_messages, crm_messages.c.direction == "out")
    assert out.status == "delivered" and out.delivered_at is not None


async def test_mark_read_sends_the_read_receipt(
    client: httpx.AsyncClient, graph: GraphServer
) -> None:
    convo_id = await inbound_convo(client)
    response = await client.post(f"/admin/crm/convos/{convo_id}/read", headers=ADMIN)
    assert response.json() == {
        "convo_id": convo_id,
        "unread": 0,
        "receipt_queued": True,
        "receipt_skipped": None,
    }
    attempts = await drain(runtime_of(client), [READ_QUEUE])
    assert [a.outcome for a in attempts] == ["done"]
    assert graph.read_receipts() == [
        {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN1"}
    ]
    [inbound] = await rows(runtime_of(client).db, crm_messages)
    assert inbound.status == "read"
    [convo] = await rows(runtime_of(client).db, crm_convos)
    assert convo.unread == 0


async def test_expired_consent_is_refused(client: httpx.AsyncClient, clock: ManualClock) -> None:
    convo_id = await inbound_convo(client)
    template = {"name": "order_update", "language": "tr", "components": []}
    assert (await send(client, convo_id=convo_id, template=template)).status_code == 202
    clock.advance(3 * 365 * 86400)  # WhatsApp consent lives 24 months
    response = await send(client, convo_id=convo_id, template=template)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "consent_required"


async def test_consent_withdrawn_while_queued_stops_the_send(
    client: httpx.AsyncClient, graph: GraphServer
) -> None:
    convo_id = await inbound_convo(client)
    assert (await send(client, convo_id=convo_id, text="Kampanya")).status_code == 202
    await post_webhook(client, p.inbound(WA, "Ayşe", p.text(WA, "wamid.IN2", "DUR")))
    attempts = await drain(runtime_of(client), [SEND_QUEUE])
    # The agent's message is refused; the STOP acknowledgement still goes out.
    assert sorted(a.outcome for a in attempts) == ["dead", "done"]
    outbound = await rows(runtime_of(client).db, crm_messages, crm_messages.c.direction == "out")
    assert [(m.body, m.status) for m in outbound] == [
        ("Kampanya", "failed"),
        (
            "WhatsApp mesajlarımızdan çıkışınız yapıldı. Tekrar almak için START yazabilirsiniz.",
            "sent",
        ),
    ]
    assert outbound[0].error["message"] == "WhatsApp consent withdrawn"
    assert [m["text"]["body"] for m in graph.sent_messages()] == [outbound[1].body]
