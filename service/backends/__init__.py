"""State backends chosen by the Redis URL: in-process when unset, Redis (one server or a
Redis Cluster) otherwise."""

from __future__ import annotations

from dataclasses import dataclass

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
    RedisClient,
    RedisCounterStore,
    RedisHashStore,
    RedisKeyValueStore,
    RedisListStore,
    RedisPubSub,
    RedisStreamStore,
    create_redis_client,
    is_cluster,
    ping,
)

__all__ = ["Backends", "RedisClient", "create_backends", "memory_backends", "redis_backends"]


@dataclass
class Backends:
    kind: str  # "memory" or "redis" (one server or a cluster: see ``cluster``)
    namespace: str
    kv: KeyValueStore
    counters: CounterStore
    hashes: HashStore
    lists: ListStore
    pubsub: PubSub
    streams: StreamStore
    redis: RedisClient | None = None
    keyspace: MemoryKeyspace | None = None

    @property
    def cluster(self) -> bool:
        """True on a Redis Cluster: multi-key commands must stay within one slot."""
        return self.redis is not None and is_cluster(self.redis)

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
    url: str,
    namespace: str,
    *,
    max_connections: int = 50,
    timeout: float = 2.0,
    cluster: bool = False,
) -> Backends:
    """Backends on the Redis of ``url``; a cluster when the URL is ``redis+cluster://`` or
    ``cluster`` is set (``KERVAN_REDIS_CLUSTER``)."""
    client = create_redis_client(
        url, max_connections=max_connections, timeout=timeout, cluster=cluster
    )
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
    redis_url: str | None,
    namespace: str,
    *,
    max_connections: int = 50,
    timeout: float = 2.0,
    cluster: bool = False,
) -> Backends:
    if redis_url is None:
        return memory_backends(namespace)
    return redis_backends(
        redis_url, namespace, max_connections=max_connections, timeout=timeout, cluster=cluster
    )
