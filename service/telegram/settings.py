"""Telegram notifications' part of the settings (``KERVAN_TELEGRAM_*``), composed into
``service.settings.Settings``. Their pacing is the queue's (``KERVAN_QUEUE_TELEGRAM_*``).

A leaf module (pydantic and the standard library only), so it never causes an import cycle;
read the values through the one ``Settings`` object.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator


class TelegramSettings(BaseModel):
    telegram_bot_token: SecretStr | None = None
    telegram_chat_id: str | None = None
    telegram_base_url: str = "https://api.telegram.org"
    telegram_language: Literal["tr", "de", "en"] = "tr"
    telegram_timezone: str = "Europe/Istanbul"
    telegram_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    telegram_fallback_webhook_url: str | None = None

    @field_validator("telegram_base_url", "telegram_fallback_webhook_url")
    @classmethod
    def _check_telegram_urls(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL")
        return value.strip()

    @field_validator("telegram_timezone")
    @classmethod
    def _check_telegram_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value
