"""The queue inside the app: embedded worker, notification producer, admin dead-letter routes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from service import features
from service.audit import list_audit
from service.telegram.jobs import notify_new_customer
from tests.fakes.telegram_server import FakeTelegram

ADMIN = {"Authorization": "Bearer test-admin-key"}
#: The features these tests need in the app: the rate-limit facility (pacing, admin limits),
#: Telegram's handlers and the queue itself. Other features' components stay out, so that
#: these tests exercise the queue and are not slowed or stalled by unrelated background work.
QUEUE_APP_FEATURES = ("ratelimit", "telegram", "queue")


@pytest.fixture(autouse=True)
def queue_app_only(monkeypatch: pytest.MonkeyPatch) -> None:
    wanted = tuple(f for f in features.FEATURES if f[0] in QUEUE_APP_FEATURES)
    assert [name for name, _ in wanted] == list(QUEUE_APP_FEATURES)
    monkeypatch.setattr(features, "FEATURES", wanted)


async def _eventually(fetch: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        value = await fetch()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.fixture(params=["embedded", "redis"])
def app_settings(
    request: pytest.FixtureRequest, make_settings: Callable[..., Any], fake_telegram: FakeTelegram
) -> Any:
    extra: dict[str, Any] = {}
    if request.param == "redis":
        extra = {"redis_url": request.getfixturevalue("redis_url"), "queue_embedded_worker": True}
    return make_settings(
        telegram_bot_token=fake_telegram.token,
        telegram_chat_id="777",
        telegram_base_url=fake_telegram.base_url,
        telegram_fallback_webhook_url=fake_telegram.fallback_url,
        telegram_language="de",
        telegram_timezone="Europe/Berlin",
        queue_max_attempts=2,
        queue_backoff_base_seconds=0.01,
        queue_backoff_cap_seconds=0.02,
        queue_poll_interval_seconds=0.02,
        queue_heartbeat_seconds=0.2,
        **extra,
    )


async def test_dead_letter_lifecycle_through_the_admin_api(
    app_settings: Any, make_client: Callable[..., Any], fake_telegram: FakeTelegram
) -> None:
    fake_telegram.script("500", "500", key="tg:wait:s1")
    async with make_client(app_settings) as client:
        runtime = client.app.state.runtime
        assert await notify_new_customer(
            runtime.queue,
            app_settings,
            key="wait:s1",
            name="Jürgen",
            at=1_700_000_000,
            position=2,
        )
        assert not await notify_new_customer(
            runtime.queue,
            app_settings,
            key="wait:s1",
            name="Jürgen",
            at=1_700_000_000,
            position=2,
        )

        async def dead() -> list[dict[str, Any]]:
            response = await client.get("/admin/jobs/dead", headers=ADMIN)
            assert response.status_code == 200
            return list(response.json()["items"])

        [item] = await _eventually(dead)
        assert item["key"] == "tg:wait:s1"
        assert item["queue"] == "telegram"
        assert item["payload"]["chat_id"] == "777"
        assert "Neuer Kunde wartet!" in item["payload"]["text"]
        assert "Position in der Warteschlange: 2" in item["payload"]["text"]
        assert [h["attempt"] for h in item["history"]] == [1, 2]
        await _eventually(lambda: _fallback_arrived(fake_telegram))

        async def detail() -> dict[str, Any] | None:
            response = await client.get(
                "/admin/jobs/dead/item", params={"key": "tg:wait:s1"}, headers=ADMIN
            )
            assert response.status_code == 200
            body: dict[str, Any] = response.json()
            return body if len(body["ledger"]) == 2 else None

        body = await _eventually(detail)
        assert [row["status_code"] for row in body["ledger"]] == [500, 500]

        replay = await client.post(
            "/admin/jobs/dead/replay", json={"key": "tg:wait:s1"}, headers=ADMIN
        )
        assert replay.status_code == 200
        assert replay.json() == {"key": "tg:wait:s1", "done": True}
        await _eventually(lambda: _delivered(fake_telegram, "tg:wait:s1"))
        assert len(fake_telegram.delivered_for("tg:wait:s1")) == 1
        again = await client.post(
            "/admin/jobs/dead/replay", json={"key": "tg:wait:s1"}, headers=ADMIN
        )
        assert again.status_code == 404
        assert again.json()["error"]["code"] == "not_found"
        # Audited once: the refused second replay left no row.
        async with runtime.db.connect() as conn:
            audited = await list_audit(conn, subject="job:tg:wait:s1")
        assert [(row["action"], row["actor"]) for row in audited] == [
            ("queue.dead_letter.replay", "api-key")
        ]

        status = await client.get("/admin/jobs/status", headers=ADMIN)
        assert status.status_code == 200
        assert status.json()["worker"]["breakers"]["telegram"] == "closed"

        ready = await client.get("/ready")
        assert ready.json()["components"]["worker"] == "ok"

        await runtime.worker.publish_stats()
        exposition = (await client.get("/metrics")).text
        assert 'kervan_queue_backlog_jobs{queue="telegram"} 0.0' in exposition
        assert 'kervan_queue_breaker_state{provider="telegram"} 0.0' in exposition
        assert 'kervan_queue_jobs_dead_lettered_total{queue="telegram"}' in exposition
        assert 'kervan_queue_oldest_job_age_seconds{queue="telegram"}' in exposition


async def _fallback_arrived(fake: FakeTelegram) -> bool:
    return bool(fake.fallback_posts)


async def _delivered(fake: FakeTelegram, key: str) -> bool:
    return bool(fake.delivered_for(key))


async def test_discard_and_guard(
    app_settings: Any, make_client: Callable[..., Any], fake_telegram: FakeTelegram
) -> None:
    fake_telegram.unknown_chats.add("777")
    async with make_client(app_settings) as client:
        runtime = client.app.state.runtime
        await runtime.queue.enqueue("telegram", {"chat_id": "777", "text": "x"}, key="gone")
        response: httpx.Response | None = None

        async def dead() -> bool:
            return await runtime.queue.get_dead_letter("gone") is not None

        await _eventually(dead)
        response = await client.post("/admin/jobs/dead/discard", json={"key": "gone"})
        assert response.status_code == 401
        response = await client.post("/admin/jobs/dead/discard", json={}, headers=ADMIN)
        assert response.status_code == 422
        response = await client.get("/admin/jobs/dead", params={"limit": 0}, headers=ADMIN)
        assert response.status_code == 422
        response = await client.post(
            "/admin/jobs/dead/discard", json={"key": "gone"}, headers=ADMIN
        )
        assert response.status_code == 200
        response = await client.post(
            "/admin/jobs/dead/discard", json={"key": "gone"}, headers=ADMIN
        )
        assert response.status_code == 404
        listing = await client.get("/admin/jobs/dead", headers=ADMIN)
        assert listing.json()["items"] == []
        async with runtime.db.connect() as conn:
            audited = await list_audit(conn, subject="job:gone")
        assert [row["action"] for row in audited] == ["queue.dead_letter.discard"]


async def test_scaled_api_without_worker_still_reports_the_backlog(
    make_settings: Callable[..., Any],
    make_client: Callable[..., Any],
    redis_url: str,
    fake_telegram: FakeTelegram,
) -> None:
    settings = make_settings(
        redis_url=redis_url,
        telegram_bot_token=fake_telegram.token,
        telegram_base_url=fake_telegram.base_url,
        queue_heartbeat_seconds=0.05,
    )
    async with make_client(settings) as client:
        runtime = client.app.state.runtime
        assert runtime.worker is None
        for i in range(3):
            await runtime.queue.enqueue("telegram", {"chat_id": 1, "text": "x"}, key=f"b{i}")

        async def backlog_shown() -> bool:
            text = (await client.get("/metrics")).text
            return 'kervan_queue_backlog_jobs{queue="telegram"} 3.0' in text

        await _eventually(backlog_shown)
        ready = await client.get("/ready")
        assert ready.status_code == 200
        assert "worker" not in ready.json()["components"]
    assert fake_telegram.requests == []  # nobody works the queue in an API-only process


async def test_admin_routes_answer_503_without_the_queue(
    monkeypatch: pytest.MonkeyPatch,
    make_settings: Callable[..., Any],
    make_client: Callable[..., Any],
) -> None:
    # An app whose features leave the queue out: its admin routes say so, as documented.
    monkeypatch.setattr(
        features, "FEATURES", tuple(f for f in features.FEATURES if f[0] == "ratelimit")
    )
    async with make_client(make_settings()) as client:
        assert client.app.state.runtime.queue is None
        status = await client.get("/admin/jobs/status", headers=ADMIN)
        replay = await client.post("/admin/jobs/dead/replay", json={"key": "k"}, headers=ADMIN)
        document = (await client.get("/openapi.json")).json()
    for response in (status, replay):
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "backend_unavailable"
    assert "503" in document["paths"]["/admin/jobs/status"]["get"]["responses"]
    assert "503" in document["paths"]["/admin/jobs/dead/replay"]["post"]["responses"]
