"""The worker against the fake Bot API: retries, deferrals, dead letters, fallback, breaker."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from core.jobs import BreakerConfig, BreakerState
from service.db.tables.jobs import queue_attempts
from service.queue.config import QueueConfig
from service.queue.handlers import HandlerRegistry
from service.queue.ledger import AttemptLedger
from service.queue.worker import Worker
from service.settings import Settings
from service.telegram import jobs as tg
from service.telegram.client import TelegramClient
from tests.fakes.telegram_server import FakeTelegram
from tests.queue.conftest import TEST_CONFIG, QueueUnderTest


@dataclasses.dataclass
class Rig:
    qut: QueueUnderTest
    fake: FakeTelegram
    worker: Worker
    ledger: AttemptLedger

    async def ledger_rows(self, key: str) -> list[dict[str, Any]]:
        await self.ledger.flush()
        async with self.qut.db.connect() as conn:
            rows = await conn.execute(
                select(queue_attempts)
                .where(queue_attempts.c.job_key == key)
                .order_by(queue_attempts.c.id)
            )
            return [dict(r) for r in rows.mappings().all()]


async def until(predicate: Callable[[], Any], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


def _settings(fake: FakeTelegram) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        telegram_bot_token=fake.token,
        telegram_chat_id="4242",
        telegram_base_url=fake.base_url,
        telegram_fallback_webhook_url=fake.fallback_url,
        telegram_language="en",
    )


# The client gives up at 0.3 s; the job timeout stays well above it so a loaded machine still
# records the client's timeout ("failed") rather than the worker's ("timed_out").
RIG_CONFIG = dataclasses.replace(TEST_CONFIG, job_timeout=2.0, visibility_timeout=2.5)


@pytest.fixture
def config() -> QueueConfig:
    return RIG_CONFIG


@pytest.fixture
async def rig(
    qut: QueueUnderTest, fake_telegram: FakeTelegram, config: QueueConfig
) -> AsyncIterator[Rig]:
    settings = _settings(fake_telegram)
    client = TelegramClient(
        base_url=fake_telegram.base_url, token=fake_telegram.token, timeout_seconds=0.3
    )
    http = httpx.AsyncClient(timeout=1.0)
    handlers = HandlerRegistry()
    handlers.register(
        tg.SEND_QUEUE,
        tg.send_handler(client),
        provider=tg.PROVIDER,
        on_dead=tg.dead_letter_hook(lambda: qut.queue, settings),
    )
    handlers.register(tg.FALLBACK_QUEUE, tg.fallback_handler(http, fake_telegram.fallback_url))
    ledger = AttemptLedger(qut.db, qut.clock, flush_interval=0.05)
    worker = Worker(
        qut.queue,
        config,
        qut.clock,
        handlers=handlers,
        queues=[tg.SEND_QUEUE, tg.FALLBACK_QUEUE],
        ledger=ledger,
    )
    await worker.start()
    yield Rig(qut, fake_telegram, worker, ledger)
    await worker.stop()
    await client.aclose()
    await http.aclose()


async def _send(rig: Rig, key: str, text: str = "hello", **kwargs: Any) -> None:
    assert await rig.qut.queue.enqueue(
        tg.SEND_QUEUE, {"chat_id": 4242, "text": text}, key=key, **kwargs
    )


async def test_failing_twice_then_succeeding_is_sent_exactly_once(rig: Rig) -> None:
    rig.fake.script("500", "timeout:0.6", key="j1")
    await _send(rig, "j1")
    await until(lambda: rig.fake.delivered_for("j1"))
    await until(lambda: _outcomes(rig, "j1", 3))
    rows = await rig.ledger_rows("j1")
    assert [r["outcome"] for r in rows] == ["failed", "failed", "succeeded"]
    assert [r["status_code"] for r in rows] == [500, None, 200]
    assert [r["attempt"] for r in rows] == [1, 2, 3]
    assert all(r["provider"] == "telegram" for r in rows)
    assert len(rig.fake.requests_for("j1")) == 3
    assert len(rig.fake.delivered_for("j1")) == 1
    assert rig.fake.fallback_posts == []


async def _outcomes(rig: Rig, key: str, n: int) -> bool:
    return len(await rig.ledger_rows(key)) >= n


async def test_failing_every_attempt_is_dead_lettered_and_the_fallback_gets_it(rig: Rig) -> None:
    rig.fake.script("500", "500", "500", key="j2")
    await _send(rig, "j2", text="new customer")
    await until(lambda: rig.fake.fallback_posts)
    [post] = rig.fake.fallback_posts
    assert post["job_key"] == "j2"
    assert post["attempts"] == 3
    assert "new customer" in post["text"]
    assert "not delivered after 3 attempts" in post["text"]
    [letter] = await rig.qut.queue.dead_letters()
    assert letter.key == "j2"
    assert [h["attempt"] for h in letter.history] == [1, 2, 3]
    assert rig.fake.delivered_for("j2") == []
    await until(lambda: _outcomes(rig, "fallback:j2", 1))


async def test_rate_limit_defers_without_consuming_attempts(rig: Rig) -> None:
    rig.fake.script("429:0", "429:0", key="j3")
    await _send(rig, "j3", max_attempts=1)
    await until(lambda: rig.fake.delivered_for("j3"))
    await until(lambda: _outcomes(rig, "j3", 3))
    rows = await rig.ledger_rows("j3")
    assert [r["outcome"] for r in rows] == ["deferred", "deferred", "succeeded"]
    assert [r["attempt"] for r in rows] == [1, 1, 1]
    assert rows[0]["status_code"] == 429


async def test_invalid_recipient_is_dead_at_once(rig: Rig) -> None:
    rig.fake.unknown_chats.add("4242")
    await _send(rig, "j4")
    await until(lambda: rig.fake.fallback_posts)
    rows = await rig.ledger_rows("j4")
    assert [r["outcome"] for r in rows] == ["permanent"]
    [letter] = await rig.qut.queue.dead_letters()
    assert "chat not found" in letter.last_error


@pytest.mark.parametrize(
    "config",
    [
        dataclasses.replace(
            RIG_CONFIG,
            breaker=BreakerConfig(min_calls=3, failure_ratio=0.5, open_seconds=60),
        )
    ],
)
async def test_open_breaker_stops_calling_the_provider(rig: Rig) -> None:
    rig.fake.script(*["500"] * 20)
    await _send(rig, "j5", max_attempts=10)
    await until(lambda: rig.worker.breakers.state("telegram") is BreakerState.OPEN)
    calls = len(rig.fake.requests)
    assert calls == 3
    await until(lambda: _has_outcome(rig, "j5", "deferred"))
    await asyncio.sleep(0.2)
    assert len(rig.fake.requests) == calls  # the outage no longer burns attempts
    rows = await rig.ledger_rows("j5")
    assert [r["attempt"] for r in rows if r["outcome"] == "failed"] == [1, 2, 3]
    assert "circuit open" in next(r["error"] for r in rows if r["outcome"] == "deferred")


async def _has_outcome(rig: Rig, key: str, outcome: str) -> bool:
    return any(r["outcome"] == outcome for r in await rig.ledger_rows(key))


@pytest.mark.parametrize("qut", ["sqlite"], indirect=True)
async def test_producers_deduplicate_and_respect_configuration(qut: QueueUnderTest) -> None:
    off = Settings(_env_file=None)  # type: ignore[call-arg]
    assert not await tg.notify_new_customer(
        qut.queue, off, key="w1", name="Ali", at=1_700_000_000, position=1
    )
    on = Settings(  # type: ignore[call-arg]
        _env_file=None, telegram_bot_token="1:T", telegram_chat_id="55", telegram_language="tr"
    )
    assert await tg.notify_new_customer(
        qut.queue, on, key="w1", name="Ali", at=1_700_000_000, position=4
    )
    assert not await tg.notify_new_customer(
        qut.queue, on, key="w1", name="Ali", at=1_700_000_000, position=4
    )
    assert await tg.enqueue_telegram_message(qut.queue, chat_id=55, text="OTP 123456", key="otp:1")
    jobs = await qut.queue.claim([tg.SEND_QUEUE], 10, worker_id="w")
    by_key = {j.key: j.payload for j in jobs}
    assert by_key["tg:otp:1"] == {"chat_id": 55, "text": "OTP 123456"}
    assert by_key["tg:w1"]["chat_id"] == "55"
    assert "Yeni müşteri sırada!" in by_key["tg:w1"]["text"]  # noqa: RUF001
    assert "Sıra numarası: 4" in by_key["tg:w1"]["text"]  # noqa: RUF001
