"""The queue's tunables, gathered from settings once so backends and the worker get plain values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.jobs import BackoffPolicy, BreakerConfig

if TYPE_CHECKING:
    from service.settings import Settings


@dataclass(frozen=True, slots=True)
class QueueConfig:
    default_max_attempts: int = 5
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    job_timeout: float = 30.0
    # Longer than job_timeout: a lease must not run out while its job may still be running.
    visibility_timeout: float = 60.0
    concurrency: int = 16
    poll_interval: float = 0.2
    shutdown_grace: float = 20.0
    heartbeat_interval: float = 5.0
    retention: float = 7 * 86400.0
    breaker: BreakerConfig = field(default_factory=BreakerConfig)

    def __post_init__(self) -> None:
        if self.visibility_timeout <= self.job_timeout:
            raise ValueError("the visibility timeout must be longer than the job timeout")

    @classmethod
    def from_settings(cls, settings: Settings) -> QueueConfig:
        return cls(
            default_max_attempts=settings.queue_max_attempts,
            backoff=BackoffPolicy(
                base=settings.queue_backoff_base_seconds, cap=settings.queue_backoff_cap_seconds
            ),
            job_timeout=settings.queue_job_timeout_seconds,
            visibility_timeout=settings.queue_visibility_timeout_seconds,
            concurrency=settings.queue_concurrency,
            poll_interval=settings.queue_poll_interval_seconds,
            shutdown_grace=settings.queue_shutdown_grace_seconds,
            heartbeat_interval=settings.queue_heartbeat_seconds,
            retention=settings.queue_retention_seconds,
            breaker=BreakerConfig(
                window_seconds=settings.queue_breaker_window_seconds,
                min_calls=settings.queue_breaker_min_calls,
                failure_ratio=settings.queue_breaker_failure_ratio,
                open_seconds=settings.queue_breaker_open_seconds,
            ),
        )
