"""Telegram notifications as queue jobs: the send handler, the fallback, and the producers.

``install(runtime)`` registers the handlers when a bot token is configured. A send that fails
for good is dead-lettered and a fallback job posts an alert to the fallback webhook (Slack,
an e-mail relay...), which is itself a durable job with its own retries.
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from core.errors import ProviderError
from core.jobs import Job, PermanentFailure, RetryLater
from service.logging import get_logger
from service.queue.base import JobQueue
from service.runtime import Runtime
from service.settings import Settings
from service.telegram.client import FailureKind, TelegramClient, TelegramError
from service.telegram.messages import Language, fallback_text, new_customer_text

log = get_logger("kervan.telegram")

SEND_QUEUE = "telegram"
FALLBACK_QUEUE = "telegram.fallback"
PROVIDER = "telegram"
BOT_PACING = "queue.telegram"
CHAT_PACING = "queue.telegram.chat"
#: When Telegram answers 429 without ``retry_after`` (it normally sends one).
DEFAULT_RETRY_AFTER = 1.0


def send_handler(client: TelegramClient) -> Any:
    async def handle(job: Job) -> int:
        chat_id, text = job.payload.get("chat_id"), job.payload.get("text")
        if not isinstance(chat_id, int | str) or not chat_id or not isinstance(text, str):
            raise PermanentFailure("payload needs chat_id and text")
        try:
            # The job key is the idempotency key: a redelivered job carries the same one.
            await client.send_message(chat_id, text, idempotency_key=job.key)
        except TelegramError as exc:
            if exc.kind is FailureKind.RATE_LIMITED:
                raise RetryLater(
                    exc.retry_after if exc.retry_after is not None else DEFAULT_RETRY_AFTER,
                    "telegram rate limit (429)",
                ) from exc
            if exc.kind is FailureKind.PERMANENT:
                raise PermanentFailure(exc.message) from exc
            raise
        return 200

    return handle


def fallback_handler(http: httpx.AsyncClient, url: str) -> Any:
    async def handle(job: Job) -> int:
        try:
            response = await http.post(
                url,
                content=orjson.dumps(job.payload),
                headers={"Content-Type": "application/json", "X-Kervan-Job": job.key},
            )
        except httpx.HTTPError as exc:
            raise ProviderError(f"fallback webhook unreachable: {type(exc).__name__}") from None
        if response.status_code == 429:
            raise RetryLater(_retry_after(response.headers.get("Retry-After")), "webhook 429")
        if response.status_code >= 500:
            raise ProviderError(f"fallback webhook answered {response.status_code}")
        if response.status_code >= 400:
            raise PermanentFailure(f"fallback webhook refused the alert: {response.status_code}")
        return response.status_code

    return handle


def _retry_after(header: str | None, default: float = 5.0) -> float:
    # Seconds only: an HTTP-date Retry-After falls back to the default.
    try:
        value = float(header) if header else default
    except ValueError:
        return default
    return min(max(value, 0.0), 3600.0)


def fallback_key(job_key: str) -> str:
    key = f"fallback:{job_key}"
    if len(key) <= 191:
        return key
    return "fallback:" + hashlib.sha256(job_key.encode()).hexdigest()


def dead_letter_hook(queue_source: Any, settings: Settings) -> Any:
    """Enqueue the fallback alert for a dead Telegram job (only with a fallback URL)."""

    async def on_dead(job: Job, error: str) -> None:
        if not settings.telegram_fallback_webhook_url:
            return
        queue: JobQueue = queue_source()
        payload = {
            "text": fallback_text(
                language=settings.telegram_language,
                attempts=job.attempt,
                error=error,
                original=str(job.payload.get("text", "")),
            ),
            "job_key": job.key,
            "queue": job.queue,
            "chat_id": job.payload.get("chat_id"),
            "error": error,
            "attempts": job.attempt,
        }
        await queue.enqueue(FALLBACK_QUEUE, payload, key=fallback_key(job.key))

    return on_dead


def chat_pacing(job: Job) -> list[tuple[str, str]]:
    return [(BOT_PACING, "bot"), (CHAT_PACING, str(job.payload.get("chat_id", "")))]


class _Closer:
    def __init__(self, *closables: Any) -> None:
        self._closables = closables

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        for item in self._closables:
            await item.aclose()


def install(runtime: Runtime) -> bool:
    """Register the Telegram handlers on this runtime; False when no bot token is set."""
    settings = runtime.settings
    if settings.telegram_bot_token is None:
        log.info("Telegram notifications are off: KERVAN_TELEGRAM_BOT_TOKEN is not set")
        return False
    client = TelegramClient(
        base_url=settings.telegram_base_url,
        token=settings.telegram_bot_token.get_secret_value(),
        timeout_seconds=settings.telegram_timeout_seconds,
    )
    webhook_http = httpx.AsyncClient(timeout=httpx.Timeout(settings.telegram_timeout_seconds))
    runtime.add_component(_Closer(client, webhook_http))
    handlers = runtime.handlers
    handlers.register_pacing_policy(BOT_PACING, settings.queue_telegram_pacing)
    handlers.register_pacing_policy(CHAT_PACING, settings.queue_telegram_chat_pacing)
    handlers.register(
        SEND_QUEUE,
        send_handler(client),
        provider=PROVIDER,
        on_dead=dead_letter_hook(lambda: runtime.queue, settings),
        pacing=chat_pacing,
    )
    if settings.telegram_fallback_webhook_url:
        handlers.register(
            FALLBACK_QUEUE,
            fallback_handler(webhook_http, settings.telegram_fallback_webhook_url),
            provider="fallback-webhook",
        )
    return True


async def enqueue_telegram_message(
    queue: JobQueue,
    *,
    chat_id: int | str,
    text: str,
    key: str,
    conn: AsyncConnection | None = None,
) -> bool:
    """Queue one Telegram message (e.g. an admin OTP); False when ``key`` was seen before.

    ``key`` names the event, not the attempt: the same key is never sent twice.
    """
    return await queue.enqueue(
        SEND_QUEUE, {"chat_id": chat_id, "text": text}, key=f"tg:{key}"[:191], conn=conn
    )


async def notify_new_customer(
    queue: JobQueue,
    settings: Settings,
    *,
    key: str,
    name: str,
    at: float,
    position: int,
    conn: AsyncConnection | None = None,
) -> bool:
    """Queue the "new customer waiting" alert to the configured chat.

    ``key`` identifies the event (e.g. ``"support-wait:<session id>"``) so a repeated call for
    the same customer sends nothing twice. False when the alert is a duplicate or Telegram is
    not configured.
    """
    if settings.telegram_bot_token is None or not settings.telegram_chat_id:
        return False
    language: Language = settings.telegram_language
    text = new_customer_text(
        name=name, at=at, position=position, language=language, timezone=settings.telegram_timezone
    )
    return await enqueue_telegram_message(
        queue, chat_id=settings.telegram_chat_id, text=text, key=key, conn=conn
    )
