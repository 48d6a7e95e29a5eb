"""Redis implementations of the state backend interfaces (scaled mode).

One bounded, blocking connection pool per process: a burst of callers waits for a free
connection (up to the socket timeout) instead of opening unbounded sockets to Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub as RedisPubSubConn

from core.errors import StateBackendError
from service.backends.base import StreamEntry
from service.backends.errors import redis_errors


def create_redis_client(url: str, *, max_connections: int, timeout: float) -> Redis:
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
    )
    return Redis(connection_pool=pool, decode_responses=False)


class _RedisStore:
    def __init__(self, client: Redis, namespace: str) -> None:
        # redis-py's annotations mix str and bytes results; the stores pin their own types.
        self._r: Any = client
        self._ns = namespace

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


class RedisPubSub(_RedisStore):
    async def publish(self, channel: str, message: bytes) -> int:
        with redis_errors("PUBLISH"):
            return int(await self._r.publish(self.k(channel), message))

    @asynccontextmanager
    async def subscribe(self, *channels: str) -> AsyncIterator[_RedisSubscription]:
        conn: Any = self._r.pubsub()
        try:
            with redis_errors("SUBSCRIBE"):
                await conn.subscribe(*(self.k(c) for c in channels))
            yield _RedisSubscription(conn, len(self._ns) + 1)
        finally:
            # Closing a broken connection must not mask the error that broke it.
            with contextlib.suppress(Exception):
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


async def ping(client: Redis) -> None:
    with redis_errors("PING"):
        if not await client.ping():
            raise StateBackendError("redis PING returned no PONG")
