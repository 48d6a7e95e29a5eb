"""The outbound queue's part of the settings (``KERVAN_QUEUE_*``), composed into
``service.settings.Settings``.

A leaf module (pydantic, the standard library and ``core`` only), so it never causes an import
cycle; read the values through the one ``Settings`` object. The check that needs another part
(``queue_backend=redis`` needs ``KERVAN_REDIS_URL``) lives in ``service/settings.py``.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, Field, field_validator, model_validator


class QueueSettings(BaseModel):
    # "auto": Redis Streams when KERVAN_REDIS_URL is set, else the SQL outbox in the database.
    queue_backend: Literal["auto", "sql", "redis"] = "auto"
    # None: run the worker inside the API process exactly when the backends are embedded.
    queue_embedded_worker: bool | None = None
    queue_max_attempts: int = Field(default=5, ge=1, le=100)
    queue_backoff_base_seconds: float = Field(default=2.0, ge=0, le=3600)
    queue_backoff_cap_seconds: float = Field(default=300.0, ge=0, le=86400)
    queue_job_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    queue_visibility_timeout_seconds: float = Field(default=90.0, gt=0, le=86400)
    queue_concurrency: int = Field(default=16, ge=1, le=1024)
    queue_poll_interval_seconds: float = Field(default=0.2, gt=0, le=10)
    queue_shutdown_grace_seconds: float = Field(default=20.0, ge=0, le=600)
    queue_heartbeat_seconds: float = Field(default=5.0, gt=0, le=300)
    queue_retention_seconds: float = Field(default=7 * 86400.0, ge=60)
    queue_breaker_window_seconds: float = Field(default=30.0, gt=0)
    queue_breaker_min_calls: int = Field(default=10, ge=1)
    queue_breaker_failure_ratio: float = Field(default=0.5, gt=0, le=1)
    queue_breaker_open_seconds: float = Field(default=30.0, gt=0)
    # Pacing in the rate-limit syntax of service/ratelimit: the whole bot, and each chat.
    queue_telegram_pacing: str = "5/second burst 5"
    queue_telegram_chat_pacing: str = "1/second burst 1"
    # Cloud API throughput is per business phone number (80 messages/s by default).
    queue_whatsapp_pacing: str = "80/second burst 80"

    @field_validator("queue_telegram_pacing", "queue_telegram_chat_pacing", "queue_whatsapp_pacing")
    @classmethod
    def _check_queue_pacing(cls, value: str) -> str:
        from core.errors import ValidationFailed
        from core.ratelimit.policy import parse_policy

        try:
            parse_policy("queue.pacing", value)
        except ValidationFailed as exc:
            raise ValueError(exc.message) from None
        return value

    @model_validator(mode="after")
    def _check_queue_timeouts(self) -> Self:
        if self.queue_visibility_timeout_seconds <= self.queue_job_timeout_seconds:
            raise ValueError(
                "queue_visibility_timeout_seconds: must be longer than "
                "KERVAN_QUEUE_JOB_TIMEOUT_SECONDS, or a job still running would be handed out again"
            )
        return self
