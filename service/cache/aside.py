"""Cache-aside with tag-based invalidation and no key scans.

A cached value is stored under a key that carries the current *version* of each of its tags
(``cache:val:<name>:<key>:<versions>``), with the time it expires on the runtime's clock (so a
test clock ages it; the backend's own TTL only frees the memory). Invalidating a tag increments
its version (one INCR), so every value cached under the old version is never read again and
simply expires with its TTL: no ``KEYS``/``SCAN``, no set of members to walk, and a write never
races a reader into keeping a stale value (a value read before the bump is stored under the old
version). Write paths invalidate after their commit (``invalidate_after_write``).

Per process, concurrent misses of one key share one load (single flight). When the state
backend fails, the loader is called directly: a cache outage slows reads, it never fails them.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import orjson
from prometheus_client import Counter

from core.errors import StateBackendError
from service.backends import Backends
from service.logging import get_logger
from service.metrics import REGISTRY

log = get_logger("kervan.cache")
T = TypeVar("T")

#: Values as ``[expires_at, value]`` (``cache:v`` held bare values before the clock came in).
CACHE_VALUE = "cache:val"
CACHE_TAG = "cache:tag"

REQUESTS = Counter(
    "kervan_cache_requests_total",
    "Cache-aside reads by cache name and outcome: hit, miss, error (the backend failed: loaded "
    "directly), bypass (not cacheable).",
    ["cache", "outcome"],
    registry=REGISTRY,
)
INVALIDATIONS = Counter(
    "kervan_cache_invalidations_total", "Tag invalidations by tag kind.", ["tag"], registry=REGISTRY
)


def tag_kind(tag: str) -> str:
    """The metric label of a tag (``site:12`` -> ``site``): bounded cardinality."""
    return tag.partition(":")[0]


def _tag_key(tag: str) -> str:
    return f"{CACHE_TAG}:{tag}"


async def invalidate_tags(backends: Backends, *tags: str) -> None:
    """Every value cached under any of ``tags`` is stale from now on (for every process).
    Raises ``StateBackendError`` when the backend fails."""
    for tag in tags:
        INVALIDATIONS.labels(tag_kind(tag)).inc()
        await backends.counters.incr(_tag_key(tag))


async def invalidate_after_write(backends: Backends, *tags: str) -> None:
    """``invalidate_tags`` for a write that already committed: a backend failure is logged,
    not raised (the write stands; what was cached ages out within its TTL, and while the
    backend is down nothing is read from it anyway)."""
    try:
        await invalidate_tags(backends, *tags)
    except StateBackendError as exc:
        log.warning("cache tags %s not invalidated: %s", ",".join(tags), exc)


class CacheAside:
    def __init__(self, backends: Backends, *, clock: Callable[[], float] = time.time) -> None:
        self._backends = backends
        self._clock = clock
        self._flights: dict[str, asyncio.Future[Any]] = {}

    def _tag_key(self, tag: str) -> str:
        return _tag_key(tag)

    async def _versions(self, tags: Sequence[str]) -> list[int]:
        counters = self._backends.counters
        return [await counters.get(self._tag_key(tag)) for tag in tags]

    def _value_key(self, name: str, key: str, versions: Sequence[int]) -> str:
        digest = hashlib.blake2b(key.encode(), digest_size=12).hexdigest()
        stamp = ".".join(str(v) for v in versions)
        return f"{CACHE_VALUE}:{name}:{digest}:{stamp}"

    async def get_or_load(
        self,
        name: str,
        key: str,
        loader: Callable[[], Awaitable[T]],
        *,
        ttl: float,
        tags: Sequence[str] = (),
    ) -> T:
        """The cached JSON-able value of ``(name, key)``, or ``loader()``'s, stored for ``ttl``
        seconds under the current versions of ``tags``."""
        try:
            versions = await self._versions(tags) if tags else []
            value_key = self._value_key(name, key, versions)
            raw = await self._backends.kv.get(value_key)
        except StateBackendError as exc:
            REQUESTS.labels(name, "error").inc()
            log.debug("cache %s unavailable: %s", name, exc)
            return await loader()
        if raw is not None:
            expires_at, found = orjson.loads(raw)
            if self._clock() < expires_at:
                REQUESTS.labels(name, "hit").inc()
                hit: T = found
                return hit
        REQUESTS.labels(name, "miss").inc()
        flight = self._flights.get(value_key)
        if flight is not None:
            shared: T = await asyncio.shield(flight)
            return shared
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._flights[value_key] = future
        try:
            value = await loader()
            # Stored before the flight ends, so a reader that misses the flight finds the value.
            try:
                stored = orjson.dumps([self._clock() + ttl, value])
                await self._backends.kv.set(value_key, stored, ttl=ttl)
            except StateBackendError as exc:
                log.debug("cache %s not stored: %s", name, exc)
            future.set_result(value)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            del self._flights[value_key]
        return value

    async def invalidate(self, *tags: str) -> None:
        """Every value cached under any of ``tags`` is stale from now on (for every process)."""
        await invalidate_tags(self._backends, *tags)

    async def invalidate_after_write(self, *tags: str) -> None:
        """``invalidate`` after a committed write: a backend failure is logged, not raised."""
        await invalidate_after_write(self._backends, *tags)
