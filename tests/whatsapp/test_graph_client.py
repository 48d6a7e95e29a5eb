"""The Graph API client against the local fake server: wire format and error mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from core.whatsapp.graph_errors import ErrorAction
from service.whatsapp.graph import (
    GraphClient,
    GraphConfig,
    GraphError,
    template_message,
    text_message,
)
from tests.fakes.graph_server import Failure, GraphServer


@pytest.fixture
def server() -> Iterator[GraphServer]:
    made = GraphServer().start()
    yield made
    made.stop()


@pytest.fixture
async def graph_client(server: GraphServer) -> AsyncIterator[GraphClient]:
    client = GraphClient(
        GraphConfig(
            base_url=server.base_url + "/",
            version=server.version,
            access_token=server.token,
            phone_number_id=server.phone_number_id,
            # Roomy: a loaded 2-core CI box timed out a plain call's connect at 1 s.
            timeout_seconds=5.0,
        )
    )
    await client.start()
    yield client
    await client.stop()


async def test_send_text_and_template(graph_client: GraphClient, server: GraphServer) -> None:
    first = await graph_client.send("905321234567", text_message("Merhaba", reply_to="wamid.X"))
    second = await graph_client.send(
        "905321234567",
        template_message("order_update", "tr", [{"type": "body", "parameters": []}]),
    )
    assert (first, second) == ("wamid.FAKE00000001", "wamid.FAKE00000002")
    text_body, template_body = server.sent_messages()
    assert text_body["context"] == {"message_id": "wamid.X"}
    assert template_body["template"]["components"] == [{"type": "body", "parameters": []}]
    assert template_body["messaging_product"] == "whatsapp"


async def test_mark_read(graph_client: GraphClient, server: GraphServer) -> None:
    await graph_client.mark_read("wamid.IN")
    assert server.read_receipts() == [
        {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN"}
    ]


@pytest.mark.parametrize(
    ("failure", "action", "code"),
    [
        (Failure(http_status=429, code=130429), ErrorAction.RETRY, 130429),
        (Failure(http_status=500), ErrorAction.RETRY, 1),
        (Failure(http_status=503, garbage=True), ErrorAction.RETRY, None),
        (Failure(http_status=400, code=131047), ErrorAction.NEEDS_TEMPLATE, 131047),
        (Failure(http_status=400, code=131026), ErrorAction.NO_RETRY, 131026),
        (Failure(http_status=200, garbage=True), ErrorAction.RETRY, None),
    ],
)
async def test_failures_map_to_actions(
    graph_client: GraphClient,
    server: GraphServer,
    failure: Failure,
    action: ErrorAction,
    code: int | None,
) -> None:
    server.fail_next(failure)
    with pytest.raises(GraphError) as raised:
        await graph_client.send("905321234567", text_message("x"))
    assert raised.value.action is action
    assert raised.value.graph_code == code


async def test_a_slow_answer_times_out_as_retryable(server: GraphServer) -> None:
    client = GraphClient(
        GraphConfig(
            server.base_url + "/",
            server.version,
            server.token,
            server.phone_number_id,
            timeout_seconds=1.0,
        )
    )
    server.fail_next(Failure(delay=1.6))
    with pytest.raises(GraphError) as raised:
        await client.send("905321234567", text_message("x"))
    await client.stop()
    # A read timeout (or, on a loaded machine, a connect timeout): either may be retried.
    assert raised.value.action is ErrorAction.RETRY
    assert "timed out" in raised.value.message
    assert raised.value.graph_code is None


async def test_unreachable_server_is_retryable(server: GraphServer) -> None:
    base = server.base_url
    server.stop()
    client = GraphClient(GraphConfig(base, "v21.0", "t", "1", timeout_seconds=0.3))
    with pytest.raises(GraphError) as raised:
        await client.send("1", text_message("x"))
    await client.stop()
    assert raised.value.action is ErrorAction.RETRY
    assert "unreachable" in raised.value.message
