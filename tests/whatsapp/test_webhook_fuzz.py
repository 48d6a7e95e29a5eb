"""Arbitrary (signed) JSON to the webhook: never a 500, never a partial write.

Hypothesis drives a synchronous test, so the app runs on an event loop in a helper thread for
the whole test and each example is submitted to it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from core.clock import ManualClock
from core.whatsapp.parse import InvalidPayload, parse_webhook
from service.db.tables.crm import crm_contacts, crm_convos, crm_messages, wa_webhook_events
from service.settings import Settings
from tests.whatsapp.conftest import START, post_webhook, runtime_of
from tests.whatsapp.dbutil import count, rows

T = TypeVar("T")

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` three times out of four, arbitrary JSON otherwise."""
    return st.integers(min_value=0, max_value=3).flatmap(lambda n: JSON if n == 3 else valid)


IDS = st.one_of(
    st.sampled_from(["wamid.A", "wamid.a", " wamid.C ", "", "x" * 200]),
    st.text(max_size=10),
    st.uuids().map(lambda u: f"wamid.{u.hex}"),
)
TYPES = st.sampled_from(["text", "image", "interactive", "reaction", "location", "zzz"]) | JSON


@st.composite
def wa_message(draw: st.DrawFn) -> Any:
    message: dict[str, Any] = {
        "id": draw(mostly(IDS)),
        "from": draw(mostly(st.sampled_from(["905321234567", "491701234567"]))),
        "type": draw(mostly(TYPES)),
        "timestamp": draw(st.sampled_from(["1700000100", "0", "99999999999999"]) | JSON),
    }
    if draw(st.booleans()):
        message["text"] = {"body": draw(st.text(max_size=20) | JSON)}
    if draw(st.booleans()):
        message["context"] = draw(JSON)
    return draw(mostly(st.just(message)))


@st.composite
def wa_payload(draw: st.DrawFn) -> Any:
    value = {
        "contacts": draw(
            st.lists(
                st.fixed_dictionaries(
                    {"wa_id": st.sampled_from(["905321234567"]) | JSON, "profile": JSON}
                ),
                max_size=2,
            )
            | JSON
        ),
        "messages": draw(mostly(st.lists(wa_message(), min_size=1, max_size=3))),
        "statuses": draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "id": IDS,
                        "status": st.sampled_from(["sent", "delivered", "read", "failed"]) | JSON,
                        "timestamp": JSON,
                        "errors": JSON,
                    }
                ),
                max_size=2,
            )
        ),
    }
    change = {"field": draw(mostly(st.just("messages"))), "value": value}
    entry = {"id": "1", "changes": draw(st.lists(mostly(st.just(change)), min_size=1, max_size=2))}
    envelope = {"object": "whatsapp_business_account", "entry": [entry]}
    return draw(mostly(st.just(envelope)))


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def app_in_thread(
    wa_settings: Callable[..., Settings],
    make_client: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]],
) -> Iterator[tuple[LoopThread, httpx.AsyncClient]]:
    runner = LoopThread()
    manager = make_client(wa_settings(), clock=ManualClock(START + 3600))
    client = runner.run(manager.__aenter__())
    try:
        yield runner, client
    finally:
        runner.run(manager.__aexit__(None, None, None))
        runner.close()


async def _snapshot(client: httpx.AsyncClient) -> tuple[int, int, int, int, set[str]]:
    db = runtime_of(client).db
    ids = {str(m.provider_id) for m in await rows(db, crm_messages)}
    return (
        await count(db, wa_webhook_events),
        await count(db, crm_messages),
        await count(db, crm_contacts),
        await count(db, crm_convos),
        ids,
    )


def _expected_new(payload: Any, known: set[str]) -> set[str] | None:
    try:
        batch = parse_webhook(payload)
    except InvalidPayload:
        return None
    return {m.provider_id for m in batch.messages} - known


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(payload=wa_payload())
def test_arbitrary_json_never_500_and_never_partial(
    app_in_thread: tuple[LoopThread, httpx.AsyncClient], payload: Any
) -> None:
    runner, client = app_in_thread
    events, messages, _contacts, _convos, known = runner.run(_snapshot(client))
    response = runner.run(post_webhook(client, payload))
    after_events, after_messages, _, _, after_ids = runner.run(_snapshot(client))
    expected = _expected_new(payload, known)
    event(f"HTTP {response.status_code}, new messages: {len(expected or ())}")
    assert after_events == events + 1  # every signed delivery is logged raw
    if expected is None:
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_payload"
        assert after_messages == messages
    else:
        assert response.status_code == 200, response.text
        # All of the delivery's new messages are stored, and nothing else.
        assert after_ids - known == expected
        assert after_messages == messages + len(expected)
        assert response.json()["messages"] == len(expected)


async def test_odd_bodies_are_client_errors(client: httpx.AsyncClient) -> None:
    for body in (orjson.dumps({"a": "\u0000\U0001f600" * 50}), b"{}" * 1000):
        response = await post_webhook(client, body)
        assert response.status_code == 400
