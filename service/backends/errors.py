"""Translation of redis-py errors into ``core.errors.StateBackendError`` at the boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis.exceptions import RedisError

from core.errors import StateBackendError
from service.backends.health_log import REDIS


@contextmanager
def redis_errors(operation: str) -> Iterator[None]:
    try:
        yield
    except RedisError as exc:
        raise StateBackendError(f"redis {operation} failed: {exc}") from exc
    except (OSError, TimeoutError) as exc:
        raise StateBackendError(f"redis {operation} failed: {exc!r}") from exc
    # A call Redis answered ends an outage the health log told of. Subscriptions prove
    # nothing: SUBSCRIBE is written without waiting for a reply (a write to a dead server's
    # socket succeeds), and a read that timed out may have waited on a dead connection.
    if REDIS.down and "SUBSCRIBE" not in operation:
        REDIS.answered()
