"""A minimal Telegram Bot API client (``sendMessage``) on httpx.

The base URL is a setting so tests and staging can point it at a local server speaking the same
wire format. Failures are classified here - retry later, retry with backoff, or give up - and the
queue handler turns that classification into queue semantics.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from core.errors import ProviderError

IDEMPOTENCY_HEADER = "X-Kervan-Idempotency-Key"
MAX_TEXT_CHARS = 4096  # Telegram's limit for one message


class FailureKind(enum.StrEnum):
    RATE_LIMITED = "rate_limited"  # 429: come back after retry_after, not the job's fault
    TRANSIENT = "transient"  # 5xx, timeouts, connection errors: retry with backoff
    PERMANENT = "permanent"  # 4xx other than 429: the request can never succeed


class TelegramError(ProviderError):
    """A failed Bot API call. ``status`` is 0 when no HTTP response arrived."""

    def __init__(
        self,
        kind: FailureKind,
        description: str,
        *,
        status: int = 0,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            f"telegram: {description}",
            details={"status": status, "kind": str(kind), "retry_after": retry_after},
        )
        self.kind = kind
        self.status = status
        self.description = description
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class SentMessage:
    message_id: int
    chat_id: int | str
    date: int


class TelegramClient:
    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        timeout_seconds: float = 10.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        if not token:
            raise ValueError("a Telegram bot token is required")
        self._method_base = f"{base_url.rstrip('/')}/bot{token}/"
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(timeout_seconds))

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def send_message(
        self,
        chat_id: int | str,
        text: str,
        *,
        idempotency_key: str | None = None,
        disable_notification: bool = False,
    ) -> SentMessage:
        if not text or len(text) > MAX_TEXT_CHARS:
            raise TelegramError(
                FailureKind.PERMANENT, f"message text must be 1..{MAX_TEXT_CHARS} characters"
            )
        body: dict[str, Any] = {"chat_id": chat_id, "text": text}
        if disable_notification:
            body["disable_notification"] = True
        # The Bot API has no idempotency key of its own; the header is ignored by Telegram but
        # lets a relay or test double deduplicate redeliveries of one job.
        headers = {IDEMPOTENCY_HEADER: idempotency_key} if idempotency_key else {}
        result = await self._call("sendMessage", body, headers)
        chat = result.get("chat") or {}
        return SentMessage(
            message_id=int(result.get("message_id", 0)),
            chat_id=chat.get("id", chat_id),
            date=int(result.get("date", 0)),
        )

    async def _call(
        self, method: str, body: dict[str, Any], headers: dict[str, str]
    ) -> dict[str, Any]:
        try:
            response = await self._http.post(
                self._method_base + method,
                content=orjson.dumps(body),
                headers={"Content-Type": "application/json", **headers},
            )
        except httpx.TimeoutException:
            raise TelegramError(FailureKind.TRANSIENT, f"{method} timed out") from None
        except httpx.HTTPError as exc:
            # Never include the URL: it carries the bot token.
            raise TelegramError(
                FailureKind.TRANSIENT, f"{method} failed: {type(exc).__name__}"
            ) from None
        return _parse(method, response)


def _parse(method: str, response: httpx.Response) -> dict[str, Any]:
    status = response.status_code
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        kind = FailureKind.TRANSIENT if status >= 500 or status < 400 else FailureKind.PERMANENT
        if status == 429:
            kind = FailureKind.RATE_LIMITED
        raise TelegramError(kind, f"{method}: HTTP {status} without a Bot API body", status=status)
    if data.get("ok") is True and status < 400:
        result = data.get("result")
        return result if isinstance(result, dict) else {}
    error_code = data.get("error_code")
    code = error_code if isinstance(error_code, int) else status
    description = str(data.get("description") or f"HTTP {status}")[:300]
    parameters = data.get("parameters")
    retry_after = None
    if isinstance(parameters, dict) and isinstance(parameters.get("retry_after"), int | float):
        retry_after = max(0.0, float(parameters["retry_after"]))
    if code == 429:
        kind = FailureKind.RATE_LIMITED
    elif code >= 500 or status >= 500:
        kind = FailureKind.TRANSIENT
    else:
        kind = FailureKind.PERMANENT
    raise TelegramError(kind, description, status=code, retry_after=retry_after)
