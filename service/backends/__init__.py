"""State backends chosen by the Redis URL: in-process when unset, Redis otherwise."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from service.backends.base import (
    CounterStore,
    HashStore,
    KeyValueStore,
    ListStore,
    PubSub,
    StreamStore,
)
from service.backends.memory import (
    MemoryCounterStore,
    MemoryHashStore,
    MemoryKeyspace,
    MemoryKeyValueStore,
    MemoryListStore,
    MemoryPubSub,
    MemoryStreamStore,
)
from service.backends.redis import (
    RedisCounterStore,
    RedisHashStore,
    RedisKeyValueStore,
    RedisListStore,
    RedisPubSub,
    RedisStreamStore,
    create_redis_client,
    ping,
)

__all__ = ["Backends", "create_backends", "memory_backends", "redis_backends"]


@dataclass
class Backends:
    kind: str  # "memory" or "redis"
    namespace: str
    kv: KeyValueStore
    counters: CounterStore
    hashes: HashStore
    lists: ListStore
    pubsub: PubSub
    streams: StreamStore
    redis: Redis | None = None
    keyspace: MemoryKeyspace | None = None

    def key(self, *parts: str) -> str:
        """The full namespaced key, for code that talks to Redis directly (Lua scripts)."""
        return ":".join((self.namespace, *parts))

    async def ping(self) -> None:
        if self.redis is not None:
            await ping(self.redis)

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


def memory_backends(namespace: str) -> Backends:
    space = MemoryKeyspace(namespace)
    return Backends(
        kind="memory",
        namespace=namespace,
        kv=MemoryKeyValueStore(space),
        counters=MemoryCounterStore(space),
        hashes=MemoryHashStore(space),
        lists=MemoryListStore(space),
        pubsub=MemoryPubSub(space),
        streams=MemoryStreamStore(space),
        keyspace=space,
    )


def redis_backends(
    url: str, namespace: str, *, max_connections: int = 50, timeout: float = 2.0
) -> Backends:
    client = create_redis_client(url, max_connections=max_connections, timeout=timeout)
    return Backends(
        kind="redis",
        namespace=namespace,
        kv=RedisKeyValueStore(client, namespace),
        counters=RedisCounterStore(client, namespace),
        hashes=RedisHashStore(client, namespace),
        lists=RedisListStore(client, namespace),
        pubsub=RedisPubSub(client, namespace),
        streams=RedisStreamStore(client, namespace),
        redis=client,
    )


def create_backends(
    redis_url: str | None, namespace: str, *, max_connections: int = 50, timeout: float = 2.0
) -> Backends:
    if redis_url is None:
        return memory_backends(namespace)
    return redis_backends(redis_url, namespace, max_connections=max_connections, timeout=timeout)
