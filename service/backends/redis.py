"""Redis implementations of the state backend interfaces (scaled mode), on one server or a
Redis Cluster.

One server: one bounded, blocking connection pool per process: a burst of callers waits for a
free connection (up to the socket timeout) instead of opening unbounded sockets to Redis.

Cluster (redis-py's ``RedisCluster``): a pool per node of ``max_connections``. Every command of
the stores names one key, except the multi-key ones, which a cluster splits per slot
(``get_many`` is one MGET per slot, ``delete`` one DEL per slot); pub/sub is sharded (SPUBLISH,
SSUBSCRIBE: a channel lives on the node of its slot instead of every message reaching every
node).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub as RedisPubSubConn
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import SSLConnection

from core.errors import StateBackendError
from service.backends.base import StreamEntry
from service.backends.errors import redis_errors
from service.backends.redis_packing import with_hiredis_packing
from service.backends.redis_url import parse_redis_url

#: A client of one Redis server or of a Redis Cluster.
RedisClient = Redis | RedisCluster


class ClusterClient(RedisCluster):
    """redis-py's cluster client, reading the cluster's map of slots before its first command.

    A fresh ``RedisCluster`` learns the map lazily, and concurrent first commands then race
    inside redis-py 8 (a connection is disconnected while another task is connecting it, seen
    as ``AttributeError: 'NoneType' object has no attribute 'writelines'``). Initialising first,
    under redis-py's own lock, avoids it.
    """

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if self._initialize:
            await self.initialize()
        return await super().execute_command(*args, **kwargs)


def create_redis_client(
    url: str, *, max_connections: int, timeout: float, cluster: bool = False
) -> RedisClient:
    """A client for ``url``: a cluster when the URL says so (``redis+cluster://``) or when
    ``cluster`` is set (``KERVAN_REDIS_CLUSTER``)."""
    target = parse_redis_url(url, cluster=cluster)
    if target.cluster:
        return ClusterClient.from_url(
            target.url,
            startup_nodes=[ClusterNode(host, port) for host, port in target.nodes[1:]] or None,
            max_connections=max_connections,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
            decode_responses=False,
        )
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
    )
    pool.connection_class = with_hiredis_packing(pool.connection_class)
    return Redis(connection_pool=pool, decode_responses=False)


def is_cluster(client: RedisClient) -> bool:
    return isinstance(client, RedisCluster)


# The RedisCluster arguments a copy of a cluster client takes over from its connections' settings.
_CLUSTER_SETTINGS = (
    "username",
    "password",
    "credential_provider",
    "client_name",
    "socket_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "socket_keepalive_options",
    "health_check_interval",
    "protocol",
    "ssl_ca_certs",
    "ssl_ca_data",
    "ssl_cert_reqs",
    "ssl_certfile",
    "ssl_check_hostname",
    "ssl_keyfile",
    "ssl_min_version",
    "ssl_ciphers",
)
# Connection settings redis-py adds per pool (maintenance notifications, original timeouts,
# the HIMPORT registry): a new pool makes its own, so they are not copied.
_POOL_INTERNALS = ("maint_notifications", "orig_", "himport_registry")


def dedicated_client(client: RedisClient, *, max_connections: int) -> RedisClient:
    """A client with connections of its own (``max_connections``, per node on a cluster),
    connecting as ``client`` does (same servers, credentials, TLS and timeouts): for blocking
    reads, which would otherwise hold the shared pool's connections for their whole wait."""
    if isinstance(client, RedisCluster):
        settings = client.connection_kwargs
        # The nodes known so far, or (before its first command) the ones it starts from.
        known = client.get_nodes() or list(client.nodes_manager.startup_nodes.values())
        return ClusterClient(
            startup_nodes=[ClusterNode(node.host, node.port) for node in known],
            max_connections=max_connections,
            ssl=settings.get("connection_class") is SSLConnection,
            decode_responses=False,
            **{k: settings[k] for k in _CLUSTER_SETTINGS if k in settings},
        )
    pool = client.connection_pool
    own_settings = {
        k: v for k, v in pool.connection_kwargs.items() if not k.startswith(_POOL_INTERNALS)
    }
    own = BlockingConnectionPool(
        connection_class=pool.connection_class,
        max_connections=max_connections,
        timeout=getattr(pool, "timeout", None),
        **own_settings,
    )
    return Redis.from_pool(own)


class _RedisStore:
    def __init__(self, client: RedisClient, namespace: str) -> None:
        # redis-py's annotations mix str and bytes results; the stores pin their own types.
        self._r: Any = client
        self._ns = namespace
        self._cluster = is_cluster(client)

    def k(self, key: str) -> str:
        return f"{self._ns}:{key}"


def _ms(ttl: float) -> int:
    # Redis rejects a zero PX; a TTL under a millisecond means "expire at once".
    return max(1, round(ttl * 1000))


class RedisKeyValueStore(_RedisStore):
    async def get(self, key: str) -> bytes | None:
        with redis_errors("GET"):
            value: bytes | None = await self._r.get(self.k(key))
            return value

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        if not keys:
            return []
        with redis_errors("MGET"):
            if self._cluster:  # one MGET per slot, in one pipeline per node
                found: list[bytes | None] = await self._r.mget_nonatomic([self.k(k) for k in keys])
                return found
            values: list[bytes | None] = await self._r.mget([self.k(k) for k in keys])
            return values

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        with redis_errors("SET"):
            await self._r.set(self.k(key), value, px=None if ttl is None else _ms(ttl))

    async def set_if_absent(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        with redis_errors("SET NX"):
            done = await self._r.set(
                self.k(key), value, nx=True, px=None if ttl is None else _ms(ttl)
            )
            return bool(done)

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        with redis_errors("DEL"):
            # A cluster client sends one DEL per slot and adds up the answers.
            return int(await self._r.delete(*(self.k(k) for k in keys)))

    _DELETE_IF_EQUALS = (
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) "
        "else return 0 end"
    )

    async def delete_if_equals(self, key: str, value: bytes) -> bool:
        with redis_errors("compare-and-delete"):
            done = await self._r.eval(self._DELETE_IF_EQUALS, 1, self.k(key), value)
            return bool(done)

    async def ttl(self, key: str) -> float | None:
        with redis_errors("PTTL"):
            left = int(await self._r.pttl(self.k(key)))
        return None if left < 0 else left / 1000.0


class RedisCounterStore(_RedisStore):
    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        with redis_errors("INCRBY"):
            if ttl is None:
                return int(await self._r.incrby(self.k(key), amount))
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.incrby(self.k(key), amount)
                # NX: the window starts with the first increment, later ones do not extend it.
                pipe.pexpire(self.k(key), _ms(ttl), nx=True)
                value, _ = await pipe.execute()
            return int(value)

    async def get(self, key: str) -> int:
        with redis_errors("GET"):
            value = await self._r.get(self.k(key))
        return 0 if value is None else int(value)

    async def reset(self, key: str) -> None:
        with redis_errors("DEL"):
            await self._r.delete(self.k(key))


class RedisHashStore(_RedisStore):
    async def set(
        self, key: str, mapping: Mapping[str, bytes], *, ttl: float | None = None
    ) -> None:
        if not mapping:
            return
        with redis_errors("HSET"):
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.hset(self.k(key), mapping=dict(mapping))
                if ttl is not None:
                    pipe.pexpire(self.k(key), _ms(ttl))
                await pipe.execute()

    async def get(self, key: str, field: str) -> bytes | None:
        with redis_errors("HGET"):
            value: bytes | None = await self._r.hget(self.k(key), field)
            return value

    async def get_all(self, key: str) -> dict[str, bytes]:
        with redis_errors("HGETALL"):
            raw: dict[bytes, bytes] = await self._r.hgetall(self.k(key))
        return {k.decode(): v for k, v in raw.items()}

    async def delete(self, key: str, *fields: str) -> int:
        if not fields:
            return 0
        with redis_errors("HDEL"):
            return int(await self._r.hdel(self.k(key), *fields))

    async def incr(self, key: str, field: str, amount: int = 1) -> int:
        with redis_errors("HINCRBY"):
            return int(await self._r.hincrby(self.k(key), field, amount))


class RedisListStore(_RedisStore):
    async def push(self, key: str, *values: bytes, ttl: float | None = None) -> int:
        if not values:
            return await self.length(key)
        with redis_errors("RPUSH"):
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.rpush(self.k(key), *values)
                if ttl is not None:
                    pipe.pexpire(self.k(key), _ms(ttl))
                result = await pipe.execute()
            return int(result[0])

    async def pop(self, key: str) -> bytes | None:
        with redis_errors("LPOP"):
            value: bytes | None = await self._r.lpop(self.k(key))
            return value

    async def range(self, key: str, start: int = 0, stop: int = -1) -> list[bytes]:
        with redis_errors("LRANGE"):
            values: list[bytes] = await self._r.lrange(self.k(key), start, stop)
            return values

    async def length(self, key: str) -> int:
        with redis_errors("LLEN"):
            return int(await self._r.llen(self.k(key)))

    async def remove(self, key: str, value: bytes) -> int:
        with redis_errors("LREM"):
            return int(await self._r.lrem(self.k(key), 0, value))

    async def position(self, key: str, value: bytes) -> int | None:
        with redis_errors("LPOS"):
            found = await self._r.lpos(self.k(key), value)
        return None if found is None else int(found)


class _RedisSubscription:
    def __init__(self, conn: RedisPubSubConn, prefix_len: int) -> None:
        self._conn: Any = conn
        self._cut = prefix_len

    async def get(self, timeout: float | None = None) -> tuple[str, bytes] | None:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - loop.time())
            with redis_errors("SUBSCRIBE read"):
                msg = await self._conn.get_message(
                    ignore_subscribe_messages=True, timeout=1.0 if left is None else left
                )
            if msg is not None and msg.get("type") == "message":
                return msg["channel"].decode()[self._cut :], msg["data"]
            if deadline is not None and loop.time() >= deadline:
                return None

    async def __aiter__(self) -> AsyncIterator[tuple[str, bytes]]:
        while True:
            item = await self.get(None)
            if item is not None:
                yield item


class _ClusterSubscription:
    """Sharded channels, possibly on several nodes: one reader task per node's connection
    passes messages on, so a message waits for no other node's read."""

    def __init__(self, conn: Any, prefix_len: int) -> None:
        self._conn = conn
        self._cut = prefix_len
        self._inbox: asyncio.Queue[tuple[str, bytes] | Exception] = asyncio.Queue()
        self._tasks = [
            asyncio.create_task(self._pump(node))
            for node in list(conn.node_pubsub_mapping.values())
        ]

    async def _pump(self, node: Any) -> None:
        try:
            while True:
                msg = await node.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is not None and msg.get("type") in ("smessage", b"smessage"):
                    self._inbox.put_nowait((msg["channel"].decode()[self._cut :], msg["data"]))
        except Exception as error:  # handed to the reader, as a broken subscription
            self._inbox.put_nowait(error)

    async def get(self, timeout: float | None = None) -> tuple[str, bytes] | None:
        try:
            item = await asyncio.wait_for(self._inbox.get(), timeout)
        except TimeoutError:
            return None
        if isinstance(item, Exception):
            self._inbox.put_nowait(item)  # the subscription stays broken
            with redis_errors("SSUBSCRIBE read"):
                raise item
        return item

    async def __aiter__(self) -> AsyncIterator[tuple[str, bytes]]:
        while True:
            item = await self.get(None)
            if item is not None:
                yield item

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class RedisPubSub(_RedisStore):
    async def publish(self, channel: str, message: bytes) -> int:
        if self._cluster:
            # Sharded: the message goes to the node of the channel's slot only.
            with redis_errors("SPUBLISH"):
                return int(await self._r.spublish(self.k(channel), message))
        with redis_errors("PUBLISH"):
            return int(await self._r.publish(self.k(channel), message))

    @asynccontextmanager
    async def subscribe(
        self, *channels: str
    ) -> AsyncIterator[_RedisSubscription | _ClusterSubscription]:
        if self._cluster:
            async with self._subscribe_sharded(*channels) as sub:
                yield sub
            return
        conn: Any = self._r.pubsub()
        try:
            with redis_errors("SUBSCRIBE"):
                await conn.subscribe(*(self.k(c) for c in channels))
            yield _RedisSubscription(conn, len(self._ns) + 1)
        finally:
            # Closing a broken connection must not mask the error that broke it.
            with contextlib.suppress(Exception):
                await conn.aclose()

    @asynccontextmanager
    async def _subscribe_sharded(self, *channels: str) -> AsyncIterator[_ClusterSubscription]:
        with redis_errors("cluster slots"):
            await self._r.initialize()  # the map of slots, which a fresh client lacks
        conn: Any = self._r.pubsub()
        sub: _ClusterSubscription | None = None
        try:
            with redis_errors("SSUBSCRIBE"):
                for channel in channels:  # one slot each: a SSUBSCRIBE per channel
                    await conn.ssubscribe(self.k(channel))
            sub = _ClusterSubscription(conn, len(self._ns) + 1)
            yield sub
        finally:
            if sub is not None:
                await sub.close()
            with contextlib.suppress(Exception):
                for node in list(conn.node_pubsub_mapping.values()):
                    await node.aclose()
                await conn.aclose()


class RedisStreamStore(_RedisStore):
    async def append(
        self, stream: str, fields: Mapping[str, bytes], *, maxlen: int | None = None
    ) -> str:
        with redis_errors("XADD"):
            ident = await self._r.xadd(
                self.k(stream),
                dict(fields),
                maxlen=maxlen,
                approximate=False,
            )
        return ident.decode() if isinstance(ident, bytes) else str(ident)

    async def read(
        self, stream: str, after: str = "0-0", *, count: int = 100, block: float | None = None
    ) -> list[StreamEntry]:
        block_ms = None if block is None else max(1, round(block * 1000))
        with redis_errors("XREAD"):
            result: Any = await self._r.xread({self.k(stream): after}, count=count, block=block_ms)
        if not result:
            return []
        entries = result[0][1]
        return [
            (ident.decode(), {k.decode(): v for k, v in fields.items()})
            for ident, fields in entries
        ]

    async def length(self, stream: str) -> int:
        with redis_errors("XLEN"):
            return int(await self._r.xlen(self.k(stream)))

    async def expire(self, stream: str, ttl: float) -> None:
        with redis_errors("PEXPIRE"):
            await self._r.pexpire(self.k(stream), _ms(ttl))

    async def delete(self, stream: str) -> None:
        with redis_errors("DEL"):
            await self._r.delete(self.k(stream))


#: The oldest Redis the scripts run on (``SET ... NX GET`` in the room send script).
MIN_REDIS_VERSION = (7, 0)


def check_version(version: str) -> None:
    """StateBackendError unless ``version`` (a server's ``redis_version``) is new enough."""
    try:
        found = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        raise StateBackendError(f"redis reports an unreadable version {version!r}") from None
    if found < MIN_REDIS_VERSION:
        needed = ".".join(map(str, MIN_REDIS_VERSION))
        raise StateBackendError(f"redis {version} is too old: kervan needs {needed} or later")


async def ping(client: RedisClient) -> None:
    """Every server answers, and runs a Redis version kervan's scripts work on (a readiness
    check: a server too old fails it by name, instead of the first chat message)."""
    with redis_errors("PING"):
        if isinstance(client, RedisCluster):
            # Every primary answers, or the part of the keyspace it serves is unreachable.
            answered = await client.ping(target_nodes=RedisCluster.PRIMARIES)
            infos = list(
                (await client.info("server", target_nodes=RedisCluster.PRIMARIES)).values()
            )
        else:
            answered = await client.ping()
            infos = [await client.info("server")]
        if not answered:
            raise StateBackendError("redis PING returned no PONG")
    for info in infos:
        check_version(str(info.get("redis_version", "")))
