"""An app wired to the local fake Graph API, on SQLite and on MariaDB."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import orjson
import pytest

from core.clock import ManualClock
from core.whatsapp.signature import sign_body
from service.queue.config import QueueConfig
from service.queue.sql import SqlOutbox
from service.runtime import Runtime
from service.settings import Settings
from tests.fakes.graph_server import GraphServer

APP_SECRET = "wa-app-secret-for-tests"
VERIFY_TOKEN = "wa-verify-token"
ACCESS_TOKEN = "wa-access-token"
START = 1_700_000_000.0


@pytest.fixture
def graph() -> Iterator[GraphServer]:
    server = GraphServer(token=ACCESS_TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START + 3600)


@pytest.fixture
def wa_settings(
    make_settings: Callable[..., Settings], database_url: str, graph: GraphServer
) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "whatsapp_app_secret": APP_SECRET,
            "whatsapp_verify_token": VERIFY_TOKEN,
            "whatsapp_access_token": ACCESS_TOKEN,
            "whatsapp_phone_number_id": graph.phone_number_id,
            "whatsapp_graph_base_url": graph.base_url,
            "whatsapp_api_version": graph.version,
            "whatsapp_timeout_seconds": 0.5,
            "whatsapp_unsubscribe_secret": "unsubscribe-secret",
            "public_origin": "https://shop.example",
            # Tests run the queued jobs themselves (tests/whatsapp/jobrunner.py).
            "queue_embedded_worker": False,
        }
        values.update(overrides)
        return make_settings(**values)

    return build


@pytest.fixture
async def client(
    wa_settings: Callable[..., Settings],
    make_client: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]],
    clock: ManualClock,
) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(wa_settings(), clock=clock) as made:
        ensure_queue(runtime_of(made))
        yield made


def ensure_queue(runtime: Runtime) -> None:
    """The SQL outbox on the runtime when no queue module set one up (tests drain it by hand)."""
    if runtime.queue is None:
        runtime.queue = SqlOutbox(runtime.db, runtime.clock, QueueConfig())


def runtime_of(client: httpx.AsyncClient) -> Runtime:
    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    return runtime


def signed(payload: Any, secret: str = APP_SECRET) -> tuple[bytes, dict[str, str]]:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return body, {
        "X-Hub-Signature-256": sign_body(secret, body),
        "Content-Type": "application/json",
    }


async def post_webhook(client: httpx.AsyncClient, payload: Any) -> httpx.Response:
    body, headers = signed(payload)
    return await client.post("/webhooks/wa", content=body, headers=headers)
