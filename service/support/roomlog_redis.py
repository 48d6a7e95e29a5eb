"""Room logs on Redis (scaled mode): one stream per room, shared by every process.

A room has a stream (``sup:room:<room>``) whose entry ids are ``<offset>-0``, so a range of
offsets is one XRANGE and ids always grow, and a head hash (``sup:roomhead:<room>``) with the
epoch and the last offset handed out. Epoch and offset live in one key so that they can only be
lost together. Appending is one Lua script (``support_room_append.lua``): it starts a new epoch
when the head is missing or its stream is gone, takes the next offset, adds the entry with
``MAXLEN ~`` and refreshes the retention TTL of both keys. A replay is one script too, so the
epoch check and the range read see the same state.

The hub's blocking ``XREAD`` runs on a small pool of its own: a blocked read would otherwise
hold one of the shared pool's connections for its whole wait.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Collection, Mapping
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis

from service.backends import Backends
from service.backends.errors import redis_errors
from service.backends.keys import (
    SUPPORT_ROOM_HEAD,
    SUPPORT_ROOM_MAXLEN,
    SUPPORT_ROOM_NEWS,
    SUPPORT_ROOM_NEWS_MAXLEN,
    SUPPORT_ROOM_RETENTION,
    SUPPORT_ROOM_STREAM,
)
from service.backends.lua import LuaScript
from service.support.roomlog import MAX_OFFSET, Replay, RoomEntry, check_since

# Connection settings redis-py adds per pool (maintenance notifications, original timeouts,
# the HIMPORT registry): a new pool makes its own, so they are not copied.
_POOL_INTERNALS = ("maint_notifications", "orig_", "himport_registry")
READER_CONNECTIONS = 2


def dedicated_client(client: Redis, *, max_connections: int = READER_CONNECTIONS) -> Redis:
    """A client with a pool of its own, connecting as ``client`` does (same server, credentials,
    TLS and timeouts)."""
    pool = client.connection_pool
    settings = {
        k: v for k, v in pool.connection_kwargs.items() if not k.startswith(_POOL_INTERNALS)
    }
    own = BlockingConnectionPool(
        connection_class=pool.connection_class,
        max_connections=max_connections,
        timeout=getattr(pool, "timeout", None),
        **settings,
    )
    return Redis.from_pool(own)


def _offset_of(ident: bytes) -> int:
    return int(ident.partition(b"-")[0])


def _pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


class RedisRoomLog:
    kind = "redis"

    def __init__(
        self,
        backends: Backends,
        *,
        maxlen: int = SUPPORT_ROOM_MAXLEN,
        retention: float = SUPPORT_ROOM_RETENTION,
    ) -> None:
        if backends.redis is None:
            raise ValueError("RedisRoomLog needs Redis backends")
        if maxlen < 1:
            raise ValueError("maxlen must be >= 1")
        self._r: Any = backends.redis
        self._key = backends.key
        self._maxlen = maxlen
        self._retention_ms = max(1, round(retention * 1000))
        self._append = LuaScript(backends.redis, "support_room_append")
        self._send = LuaScript(backends.redis, "support_room_send")
        self._since = LuaScript(backends.redis, "support_room_since")
        self._reader: Any = dedicated_client(backends.redis)
        timeout = self._reader.connection_pool.connection_kwargs.get("socket_timeout")
        # A blocked read must answer well within the socket timeout, or it would be cut off
        # as a dead connection.
        self._max_block: float | None = None if timeout is None else timeout / 2
        self._news = self._key(SUPPORT_ROOM_NEWS)
        #: The last news entry read; None until the first read (and after an error), when
        #: every room is read in full once, since news before the cursor are not looked at.
        self._news_cursor: str | None = None
        #: Per room, the offset up to which it was read (the news cover what comes after).
        self._through: dict[str, int] = {}

    def _stream(self, room: str) -> str:
        return self._key(SUPPORT_ROOM_STREAM, room)

    def _head(self, room: str) -> str:
        return self._key(SUPPORT_ROOM_HEAD, room)

    async def append(self, room: str, payload: bytes) -> tuple[str, int]:
        epoch, offset = await self._append(
            keys=[self._stream(room), self._head(room), self._news],
            args=[
                payload,
                secrets.token_hex(8),
                self._maxlen,
                self._retention_ms,
                room,
                SUPPORT_ROOM_NEWS_MAXLEN,
            ],
        )
        return epoch.decode(), int(offset)

    async def append_once(
        self, room: str, payload: bytes, *, marker: str, marker_ttl: float
    ) -> tuple[str, int, bool]:
        epoch, offset, duplicate = await self._send(
            keys=[self._stream(room), self._head(room), self._key(marker), self._news],
            args=[
                payload,
                secrets.token_hex(8),
                self._maxlen,
                self._retention_ms,
                max(1, round(marker_ttl * 1000)),
                room,
                SUPPORT_ROOM_NEWS_MAXLEN,
            ],
        )
        return epoch.decode(), int(offset), bool(duplicate)

    async def _replay(self, room: str, epoch: str, offset: int, limit: int) -> list[Any]:
        reply: list[Any] = await self._since(
            keys=[self._stream(room), self._head(room)],
            args=[epoch, offset, limit, secrets.token_hex(8), self._retention_ms],
        )
        return reply

    async def epoch(self, room: str) -> tuple[str, int]:
        current, last, _, _ = await self._replay(room, "", 0, 0)
        return current.decode(), int(last)

    async def since(self, room: str, epoch: str, offset: int, *, limit: int = 500) -> Replay:
        offset = check_since(offset, limit)
        current, last, recovered, raw = await self._replay(room, epoch, offset, limit)
        name = current.decode()
        entries = [
            RoomEntry(room, _offset_of(ident), _pairs(fields)[b"p"], name) for ident, fields in raw
        ]
        last = int(last)
        more = bool(entries) and entries[-1].offset < last
        return Replay(name, bool(recovered), entries, more, last)

    async def read_many(
        self, positions: Mapping[str, int], *, block: float | None, count: int = 500
    ) -> list[RoomEntry]:
        """Rooms are read only when the news stream says they moved past the position asked
        (one blocking read of the news, however many rooms); a room new to the reader, or
        every room after an error, is read in full once."""
        if block is not None and block > 0 and self._max_block is not None:
            block = min(block, self._max_block)
        if not positions:
            if block is not None and block > 0:
                await asyncio.sleep(block)
            return []
        if any(offset < 0 for offset in positions.values()):
            raise ValueError("offsets must be >= 0")
        try:
            return await self._read_news(positions, block, count)
        except BaseException:
            self._news_cursor = None
            raise

    async def _read_news(
        self, positions: Mapping[str, int], block: float | None, count: int
    ) -> list[RoomEntry]:
        if self._news_cursor is None:
            with redis_errors("XREVRANGE"):
                newest: Any = await self._reader.xrevrange(self._news, count=1)
            self._news_cursor = newest[0][0].decode() if newest else "0-0"
            self._through = {}
        for room in [room for room in self._through if room not in positions]:
            del self._through[room]
        # New rooms, and rooms asked again from before what was read, are read in full.
        fresh = {
            room: at
            for room, at in positions.items()
            if room not in self._through or at < self._through[room]
        }
        if fresh:
            entries = await self._read_rooms(fresh, count)
            self._note_read(fresh, entries, count)
            if entries:
                return entries
        # BLOCK 0 would wait forever: no block (or none left) reads without waiting.
        block_ms = None if block is None or block <= 0 else max(1, round(block * 1000))
        with redis_errors("XREAD"):
            result: Any = await self._reader.xread(
                {self._news: self._news_cursor}, count=10_000, block=block_ms
            )
        behind: dict[str, int] = {}
        for _key, items in result or ():
            for ident, fields in items:
                self._news_cursor = ident.decode()
                room = fields[b"r"].decode()
                at = positions.get(room)
                if at is not None and int(fields[b"o"]) > at:
                    behind[room] = at
        if not behind:
            return []
        entries = await self._read_rooms(behind, count)
        self._note_read(behind, entries, count)
        return entries

    def _note_read(
        self, positions: Mapping[str, int], entries: list[RoomEntry], count: int
    ) -> None:
        """Remember how far each room was read; a room that filled its ``count`` may hold more
        than the news will announce again, so it is read in full on the next call."""
        per_room: dict[str, int] = {}
        for room, at in positions.items():
            self._through[room] = max(at, self._through.get(room, 0))
        for entry in entries:
            per_room[entry.room] = per_room.get(entry.room, 0) + 1
            self._through[entry.room] = max(entry.offset, self._through[entry.room])
        for room, n in per_room.items():
            if n >= count:
                del self._through[room]

    async def _read_rooms(self, positions: Mapping[str, int], count: int) -> list[RoomEntry]:
        rooms = {self._stream(room): room for room in positions}
        streams = {
            self._stream(room): f"{min(offset, MAX_OFFSET)}-0" for room, offset in positions.items()
        }
        with redis_errors("XREAD"):
            result: Any = await self._reader.xread(streams, count=count)
        entries: list[RoomEntry] = []
        for key, items in result or ():
            room = rooms[key.decode()]
            for ident, fields in items:
                entries.append(
                    RoomEntry(room, _offset_of(ident), fields[b"p"], fields[b"e"].decode())
                )
        return entries

    async def heads(self, rooms: Collection[str]) -> dict[str, tuple[str, int]]:
        names = list(rooms)
        if not names:
            return {}
        with redis_errors("HMGET"):
            async with self._r.pipeline(transaction=False) as pipe:
                for room in names:
                    pipe.hmget(self._head(room), "epoch", "offset")
                answers = await pipe.execute()
        return {
            room: (epoch.decode(), int(last or 0))
            for room, (epoch, last) in zip(names, answers, strict=True)
            if epoch is not None
        }

    async def drop(self, room: str) -> None:
        with redis_errors("DEL"):
            await self._r.delete(self._stream(room), self._head(room))

    async def close(self) -> None:
        await self._reader.aclose()
