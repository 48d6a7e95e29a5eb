"""Translation of redis-py errors into ``core.errors.StateBackendError`` at the boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis.exceptions import RedisError

from core.errors import StateBackendError


@contextmanager
def redis_errors(operation: str) -> Iterator[None]:
    try:
        yield
    except RedisError as exc:
        raise StateBackendError(f"redis {operation} failed: {exc}") from exc
    except (OSError, TimeoutError) as exc:
        raise StateBackendError(f"redis {operation} failed: {exc!r}") from exc
