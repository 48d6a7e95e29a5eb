"""Choose and build the queue backend from settings."""

from __future__ import annotations

from core.clock import Clock
from service.backends import Backends
from service.db import Database
from service.queue.base import JobQueue
from service.queue.config import QueueConfig
from service.queue.redis_streams import RedisStreamsQueue
from service.queue.sql import SqlOutbox
from service.settings import Settings


def build_queue(
    settings: Settings, db: Database, backends: Backends, clock: Clock, config: QueueConfig
) -> JobQueue:
    outbox = SqlOutbox(db, clock, config)
    use_redis = settings.queue_backend == "redis" or (
        settings.queue_backend == "auto" and backends.redis is not None
    )
    if not use_redis:
        return outbox
    if backends.redis is None:
        raise RuntimeError("queue_backend 'redis' needs KERVAN_REDIS_URL")
    return RedisStreamsQueue(backends.redis, backends.key, clock, config, outbox=outbox)
