"""The history feed on Redis (scaled mode): one stream read by one consumer group.

The room send script adds ``{h: record}`` entries (``SUPPORT_HISTORY_STREAM``); every history
writer, in any process, is a consumer of the group ``SUPPORT_HISTORY_GROUP``, so each record
goes to one writer. ``done`` acknowledges and deletes the entries, so the stream holds only what
is not in the database yet. Records a writer took and never finished (it died) stay pending in
the group; every ``claim_every`` seconds a writer takes over (``XAUTOCLAIM``) the ones pending
for ``claim_idle`` seconds. The group is made from the stream's start when missing (a first
run, or Redis lost its data): whatever the stream holds is then read.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Sequence
from typing import Any

from redis.exceptions import RedisError, ResponseError

from service.backends import Backends
from service.backends.errors import redis_errors
from service.backends.keys import (
    SUPPORT_HISTORY_CLAIM_IDLE,
    SUPPORT_HISTORY_GROUP,
    SUPPORT_HISTORY_STREAM,
)
from service.backends.redis import dedicated_client
from service.logging import get_logger
from service.support.historyfeed import FedRecord

log = get_logger("kervan.support.history")

CLAIM_EVERY = 10.0


def consumer_name() -> str:
    """Unique per feed: a writer that starts again is a new consumer, and what its former
    self left pending is taken over like any other writer's."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class RedisHistoryFeed:
    kind = "redis"

    def __init__(
        self,
        backends: Backends,
        *,
        claim_idle: float = SUPPORT_HISTORY_CLAIM_IDLE,
        claim_every: float = CLAIM_EVERY,
    ) -> None:
        if backends.redis is None:
            raise ValueError("RedisHistoryFeed needs Redis backends")
        if claim_idle <= 0 or claim_every <= 0:
            raise ValueError("claim_idle and claim_every must be > 0")
        self._r: Any = backends.redis
        #: Blocking reads on a connection of their own (as the room hub's reader).
        self._reader: Any = dedicated_client(backends.redis, max_connections=1)
        self._stream = backends.key(SUPPORT_HISTORY_STREAM)
        self._consumer = consumer_name()
        self._claim_idle_ms = max(1, round(claim_idle * 1000))
        self._claim_every = claim_every
        self._next_claim = 0.0
        timeout = backends.redis.get_connection_kwargs().get("socket_timeout")
        self._max_block: float | None = None if timeout is None else timeout / 2

    async def take(self, count: int, *, block: float) -> list[FedRecord]:
        if count < 1:
            raise ValueError("count must be >= 1")
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_claim:
            claimed, more = await self._claim(count)
            # More left over than one call takes: the next take claims again.
            self._next_claim = loop.time() + (0.0 if more else self._claim_every)
            if claimed:
                return claimed
        if self._max_block is not None:
            block = min(block, self._max_block)
        block_ms = max(1, round(block * 1000)) if block > 0 else None
        reply: Any = await self._group_call(
            "XREADGROUP",
            lambda: self._reader.xreadgroup(
                SUPPORT_HISTORY_GROUP,
                self._consumer,
                {self._stream: ">"},
                count=count,
                block=block_ms,
            ),
        )
        return [
            FedRecord(ident.decode(), fields[b"h"])
            for _key, items in reply or ()
            for ident, fields in items
            if fields and b"h" in fields
        ]

    async def _claim(self, count: int) -> tuple[list[FedRecord], bool]:
        reply: Any = await self._group_call(
            "XAUTOCLAIM",
            lambda: self._r.xautoclaim(
                self._stream,
                SUPPORT_HISTORY_GROUP,
                self._consumer,
                self._claim_idle_ms,
                start_id="0-0",
                count=count,
            ),
        )
        cursor, items = reply[0], reply[1]
        claimed = [
            FedRecord(ident.decode(), fields[b"h"], retried=True)
            for ident, fields in items
            if fields and b"h" in fields
        ]
        return claimed, cursor not in (b"0-0", "0-0")

    async def _group_call(self, operation: str, call: Any) -> Any:
        with redis_errors(operation):
            try:
                return await call()
            except ResponseError as error:
                if not str(error).startswith("NOGROUP"):
                    raise
            # No group yet (a first run, or Redis lost its data): made from the stream's start.
            try:
                await self._r.xgroup_create(
                    self._stream, SUPPORT_HISTORY_GROUP, id="0", mkstream=True
                )
            except ResponseError as error:
                if not str(error).startswith("BUSYGROUP"):
                    raise
            return await call()

    async def done(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        with redis_errors("XACK"):
            async with self._r.pipeline(transaction=False) as pipe:
                pipe.xack(self._stream, SUPPORT_HISTORY_GROUP, *ids)
                pipe.xdel(self._stream, *ids)
                await pipe.execute()

    async def backlog(self) -> int:
        with redis_errors("XLEN"):
            return int(await self._r.xlen(self._stream))

    async def close(self) -> None:
        """Also leaves the group when this writer holds nothing: every start is a new
        consumer, and the group would otherwise keep one entry per start. (One that holds
        records stays, for another writer to take them over.)"""
        try:
            held = await self._r.xpending_range(
                self._stream, SUPPORT_HISTORY_GROUP, "-", "+", 1, consumername=self._consumer
            )
            if not held:
                await self._r.xgroup_delconsumer(
                    self._stream, SUPPORT_HISTORY_GROUP, self._consumer
                )
        except (RedisError, OSError) as error:  # no group yet, or Redis gone at shutdown
            log.info("support history feed: consumer not removed: %s", error)
        finally:
            await self._reader.aclose()
