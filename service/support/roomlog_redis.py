"""Room logs on Redis (scaled mode): one stream per room, shared by every process.

A room has a stream (``{sup:room:<room>}:log``) whose entry ids are ``<offset>-0``, so a range
of offsets is one XRANGE and ids always grow, and a head hash (``{sup:room:<room>}:head``) with
the epoch and the last offset handed out. Epoch and offset live in one key so that they can only be
lost together. Appending is one Lua script (``support_room_append.lua``): it starts a new epoch
when the head is missing or its stream is gone, takes the next offset, adds the entry with
``MAXLEN ~`` and renews the retention TTL of both keys. A replay is one script too, so the
epoch check and the range read see the same state. Both keys live for the retention plus a
slack (``SUPPORT_ROOM_RETENTION_SLACK``) from the head's ``kept`` time, which a client's
message renews only once the slack has passed: the send script is every chat message's cost on
Redis, and it runs five commands a message (``support_room_send_many.lua`` says which).

A client's message (``append_once``, stored at most once per client id) waits for the end of
the event-loop turn: every message of the turn is stored by one script call
(``support_room_send_many.lua``, in the order given), with one news entry naming each room
that moved (``r:<room>`` -> its newest offset), and each stored message's history record added
to the history stream (``historyfeed_redis.py``) in the same step. Under load a turn holds many
messages, so the cost of a Redis call is paid once for all of them.

The hub's blocking ``XREAD`` runs on a small pool of its own: a blocked read would otherwise
hold one of the shared pool's connections for its whole wait.

Redis Cluster: a room's keys (stream, head, client-id markers) share the room's hash tag, so the
scripts stay in one slot and rooms spread over the slots. The news stream is a key of its own:
there the scripts leave it out and the news entry is added right after, as a command of its own
(a process dying between the two loses that news; the room is read again with its next news,
and a client's resend of the same message adds the news again), and so are the history records
(the history stream is a key of its own too; a process dying between the two loses those
records, which the database then lacks); a turn's messages are one
script call each (their rooms' slots differ) and one news entry. Reading many rooms is one
XREAD per room, sent in one pipeline per node.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Collection, Mapping
from typing import Any

from service.backends import Backends
from service.backends.errors import redis_errors
from service.backends.keys import (
    SUPPORT_HISTORY_MAXLEN,
    SUPPORT_HISTORY_STREAM,
    SUPPORT_ROOM_HEAD,
    SUPPORT_ROOM_MAXLEN,
    SUPPORT_ROOM_NEWS,
    SUPPORT_ROOM_NEWS_MAXLEN,
    SUPPORT_ROOM_RETENTION,
    SUPPORT_ROOM_RETENTION_SLACK,
    SUPPORT_ROOM_STREAM,
    room_key,
)
from service.backends.lua import LuaScript
from service.backends.redis import dedicated_client
from service.backends.redis_line import RedisLine
from service.support.roomlog import MAX_OFFSET, Replay, RoomEntry, check_since

READER_CONNECTIONS = 2  # per node on a cluster
#: Client messages stored in one script call at most (the sends of one event-loop turn).
SEND_BATCH = 128
#: Event-loop turns the reader lets pass when the news are of this process's own sends: the
#: script's answer is read, then the senders run (and deliver to this process's sinks).
SENDERS_TURNS = 3
SENT_ROOMS_LIMIT = 10_000
#: Rooms whose keys are kept made (then the cache starts afresh).
ROOM_KEYS_LIMIT = 50_000


#: A send waiting for its turn's script call: room, payload, marker key, marker lifetime (ms),
#: history record (b"" for none) and the sender's future of (epoch, offset, duplicate).
_Send = tuple[str, bytes, str, int, bytes, asyncio.Future[tuple[str, int, bool]]]


def _answer(sends: list[_Send], reply: list[Any]) -> None:
    """Each sender's ``(epoch, offset, duplicate)`` from the script's flat reply."""
    for index, (*_, future) in enumerate(sends):
        if not future.done():  # the sender may have been cancelled meanwhile
            epoch, offset, duplicate = reply[3 * index : 3 * index + 3]
            future.set_result((epoch.decode(), int(offset), bool(duplicate)))


def _fail(sends: list[_Send], error: Exception) -> None:
    for *_, future in sends:
        if not future.done():
            future.set_exception(error)


def _cancel(sends: list[_Send]) -> None:
    for *_, future in sends:
        future.cancel()


def _offset_of(ident: bytes) -> int:
    return int(ident.partition(b"-")[0])


def _pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _xread_parsed(raw: Any) -> list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]]:
    """A raw RESP2 ``XREAD`` reply (a ``RedisLine``'s) shaped as redis-py parses it."""
    return [(key, [(ident, _pairs(flat)) for ident, flat in items]) for key, items in raw or ()]


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
        self._slack_ms = max(1, round(self._retention_ms * SUPPORT_ROOM_RETENTION_SLACK))
        self._append = LuaScript(backends.redis, "support_room_append")
        self._send_many = LuaScript(backends.redis, "support_room_send_many")
        #: Sends waiting for this loop turn's script call.
        self._sends: list[_Send] = []
        self._flushes: set[asyncio.Task[None]] = set()
        #: Rooms this process sent to since the reader last looked at the news.
        self._sent_rooms: set[str] = set()
        self._room_keys: dict[str, tuple[str, str]] = {}
        self._since = LuaScript(backends.redis, "support_room_since")
        self._cluster = backends.cluster
        self._reader: Any = dedicated_client(backends.redis, max_connections=READER_CONNECTIONS)
        #: The hot commands (the send script, the hub's reads) on lines of their own where the
        #: server allows (``redis_line.py``): the news read blocks, so it has its own.
        self._line = RedisLine.of(backends.redis)
        self._news_line = RedisLine.of(backends.redis)
        timeout = backends.redis.get_connection_kwargs().get("socket_timeout")
        # A blocked read must answer well within the socket timeout, or it would be cut off
        # as a dead connection.
        self._max_block: float | None = None if timeout is None else timeout / 2
        self._news = self._key(SUPPORT_ROOM_NEWS)
        self._history = self._key(SUPPORT_HISTORY_STREAM)
        #: The last news entry read; None until the first read (and after an error), when
        #: every room is read in full once, since news before the cursor are not looked at.
        self._news_cursor: str | None = None
        #: Per room, the offset up to which it was read (the news cover what comes after).
        self._through: dict[str, int] = {}
        #: The positions last compared with ``_through`` in full; given again, the same rooms.
        self._followed: Mapping[str, int] | None = None

    def _keys_of(self, room: str) -> tuple[str, str]:
        """The room's stream and head keys, made once per room (every send and every read of
        a room names them)."""
        keys = self._room_keys.get(room)
        if keys is None:
            if len(self._room_keys) >= ROOM_KEYS_LIMIT:
                self._room_keys.clear()
            keys = (
                self._key(room_key(room, SUPPORT_ROOM_STREAM)),
                self._key(room_key(room, SUPPORT_ROOM_HEAD)),
            )
            self._room_keys[room] = keys
        return keys

    def _stream(self, room: str) -> str:
        return self._keys_of(room)[0]

    def _head(self, room: str) -> str:
        return self._keys_of(room)[1]

    def _with_news(self, *room_keys: str) -> list[str]:
        # One server: the script adds the news entry itself, in the same atomic step.
        return list(room_keys) if self._cluster else [*room_keys, self._news]

    async def _add_news(self, room: str, offset: int) -> None:
        """Cluster: the news entry, after the script stored the message (never before, or a
        hub could read the room before the message is in it)."""
        with redis_errors("XADD news"):
            await self._r.xadd(
                self._news,
                {"r": room, "o": str(offset)},
                maxlen=SUPPORT_ROOM_NEWS_MAXLEN,
                approximate=True,
            )

    async def append(self, room: str, payload: bytes) -> tuple[str, int]:
        epoch, offset = await self._append(
            keys=self._with_news(self._stream(room), self._head(room)),
            args=[
                payload,
                secrets.token_hex(8),
                self._maxlen,
                self._retention_ms,
                room,
                SUPPORT_ROOM_NEWS_MAXLEN,
                self._slack_ms,
            ],
        )
        if self._cluster:
            await self._add_news(room, int(offset))
        return epoch.decode(), int(offset)

    async def append_once(
        self,
        room: str,
        payload: bytes,
        *,
        marker: str,
        marker_ttl: float,
        record: bytes | None = None,
    ) -> tuple[str, int, bool]:
        # Every send of this event-loop turn is stored together, when the turn's other
        # callbacks (other connections' frames) have run.
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[str, int, bool]] = loop.create_future()
        if not self._sends:
            loop.call_soon(self._flush_sends)
        marker_key = self._key(room_key(room, marker))
        if len(self._sent_rooms) >= SENT_ROOMS_LIMIT:  # no reader looks at the news
            self._sent_rooms.clear()
        self._sent_rooms.add(room)
        marker_ms = max(1, round(marker_ttl * 1000))
        self._sends.append((room, payload, marker_key, marker_ms, record or b"", future))
        return await future

    def _flush_sends(self) -> None:
        sends, self._sends = self._sends, []
        if self._cluster:
            # Rooms lie in different slots: a script call per message (one slot each), and
            # one news entry for the turn after them.
            task = asyncio.get_running_loop().create_task(self._store_sends_cluster(sends))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)
            return
        for start in range(0, len(sends), SEND_BATCH):
            task = asyncio.get_running_loop().create_task(
                self._store_sends(sends[start : start + SEND_BATCH])
            )
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def _run_send_many(self, sends: list[_Send], *, news: bool) -> list[Any]:
        keys: list[str] = []
        args: list[Any] = [
            self._maxlen,
            self._retention_ms,
            SUPPORT_ROOM_NEWS_MAXLEN,
            secrets.token_hex(8),
            SUPPORT_HISTORY_MAXLEN,
            self._slack_ms,
        ]
        for room, payload, marker_key, marker_ms, record, _ in sends:
            keys += (*self._keys_of(room), marker_key)
            args += (payload, room, marker_ms, record)
        if news:
            keys += (self._news, self._history)
        if self._line is not None:
            answer: list[Any] = await self._send_many.on_line(self._line, keys, args)
            return answer
        reply: list[Any] = await self._send_many(keys=keys, args=args)
        return reply

    async def _store_sends(self, sends: list[_Send]) -> None:
        try:
            reply = await self._run_send_many(sends, news=True)
        except Exception as error:
            _fail(sends, error)
            return
        except BaseException:
            _cancel(sends)
            raise
        _answer(sends, reply)

    async def _store_sends_cluster(self, sends: list[_Send]) -> None:
        try:
            replies = await asyncio.gather(
                *(self._run_send_many([send], news=False) for send in sends)
            )
            reply = [value for each in replies for value in each]
            # After the messages are stored (a hub reading the news must find them), and for
            # a resend too: it repairs a news entry lost with a process dying in between.
            moved: dict[str, int] = {}
            for (room, *_), offset in zip(sends, reply[1::3], strict=True):
                moved[room] = max(int(offset), moved.get(room, 0))
            stored = [
                send[4] for send, duplicate in zip(sends, reply[2::3], strict=True) if not duplicate
            ]
            with redis_errors("XADD news"):
                async with self._r.pipeline(transaction=False) as pipe:
                    pipe.xadd(
                        self._news,
                        {f"r:{room}": str(offset) for room, offset in moved.items()},
                        maxlen=SUPPORT_ROOM_NEWS_MAXLEN,
                        approximate=True,
                    )
                    # A process dying before this loses these records (as it may the news).
                    for record in stored:
                        if record:
                            pipe.xadd(
                                self._history,
                                {"h": record},
                                maxlen=SUPPORT_HISTORY_MAXLEN,
                                approximate=True,
                            )
                    await pipe.execute()
        except Exception as error:
            _fail(sends, error)
            return
        except BaseException:
            _cancel(sends)
            raise
        _answer(sends, reply)

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
        if positions is not self._followed and any(offset < 0 for offset in positions.values()):
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
            self._followed = None
        fresh: dict[str, int] = {}
        if positions is not self._followed:
            # Other rooms than last time (the same mapping again: the same rooms, each at the
            # offset it was or later; looked at only through the news, whatever their number).
            for room in [room for room in self._through if room not in positions]:
                del self._through[room]
            # New rooms, and rooms asked again from before what was read, are read in full.
            fresh = {
                room: at
                for room, at in positions.items()
                if room not in self._through or at < self._through[room]
            }
            self._followed = positions
        if fresh:
            entries = await self._read_rooms(fresh, count)
            self._note_read(fresh, entries, count)
            if entries:
                return entries
        # BLOCK 0 would wait forever: no block (or none left) reads without waiting.
        block_ms = None if block is None or block <= 0 else max(1, round(block * 1000))
        result: Any
        with redis_errors("XREAD"):
            if self._news_line is not None:
                blocking = [] if block_ms is None else ["BLOCK", block_ms]
                raw = await self._news_line.call(
                    "XREAD",
                    "COUNT",
                    10_000,
                    *blocking,
                    "STREAMS",
                    self._news,
                    self._news_cursor,
                    wait=(block_ms or 0) / 1000,
                )
                result = _xread_parsed(raw)
            else:
                result = await self._reader.xread(
                    {self._news: self._news_cursor}, count=10_000, block=block_ms
                )
        moved: list[tuple[str, bytes]] = []
        for _key, items in result or ():
            for ident, fields in items:
                self._news_cursor = ident.decode()
                room_bytes = fields.get(b"r")
                if room_bytes is not None:  # one append's news: {r: room, o: offset}
                    moved.append((room_bytes.decode(), fields[b"o"]))
                else:  # a batch of sends: {r:<room>: offset, ...}
                    moved += [(name[2:].decode(), offset) for name, offset in fields.items()]
        if self._sent_rooms:
            if moved and all(room in self._sent_rooms for room, _ in moved):
                # Only news of this process's own sends, read as soon as they were stored:
                # their senders deliver them to this process's sinks a moment later (the
                # positions are read live), which spares reading the rooms again. (News of
                # other rooms too are not kept waiting.)
                for _ in range(SENDERS_TURNS):
                    await asyncio.sleep(0)
            self._sent_rooms.clear()
        behind: dict[str, int] = {}
        for room, offset in moved:
            if room in behind:
                continue
            at = positions.get(room)
            if at is not None and int(offset) > at:
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
                self._followed = None  # read in full again next time

    async def _read_rooms(self, positions: Mapping[str, int], count: int) -> list[RoomEntry]:
        rooms: dict[str, str] = {}
        streams: dict[str, str] = {}
        for room, offset in positions.items():
            stream = self._keys_of(room)[0]
            rooms[stream] = room
            streams[stream] = f"{min(offset, MAX_OFFSET)}-0"
        result: Any
        with redis_errors("XREAD"):
            if self._cluster:  # rooms lie in different slots: one XREAD each, pipelined
                async with self._reader.pipeline(transaction=False) as pipe:
                    for stream, after in streams.items():
                        pipe.xread({stream: after}, count=count)
                    replies = await pipe.execute()
                result = [found for reply in replies for found in reply or ()]
            elif self._line is not None:
                raw = await self._line.call(
                    "XREAD", "COUNT", count, "STREAMS", *streams.keys(), *streams.values()
                )
                result = _xread_parsed(raw)
            else:
                result = await self._reader.xread(streams, count=count)
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
        for line in (self._line, self._news_line):
            if line is not None:
                await line.close()
