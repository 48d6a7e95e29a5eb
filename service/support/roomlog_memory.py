"""Room logs in-process (embedded mode).

Each room is one object in the backends' keyspace, under the same key the Redis stream has,
with the retention period as its TTL (refreshed by appends): the keyspace's expiry forgets an
idle room as Redis would. No method awaits between reading and writing a room, so on one event
loop every call is one atomic step. Blocked readers wait on one shared event, also kept in the
keyspace, so that every log made from the same backends sees the others' appends.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from service.backends.keys import (
    SUPPORT_ROOM_MAXLEN,
    SUPPORT_ROOM_RETENTION,
    SUPPORT_ROOM_SIGNAL,
    SUPPORT_ROOM_STREAM,
    room_key,
)
from service.backends.memory import MemoryKeyspace
from service.support.historyfeed_memory import add_record
from service.support.roomlog import Replay, RoomEntry, check_since


@dataclass
class _Room:
    epoch: str
    last: int = 0
    entries: deque[RoomEntry] = field(default_factory=deque)


class _Signal:
    """Set once per append and replaced: a waiter holds the event of the moment it started."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()

    def fire(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


def new_epoch() -> str:
    return secrets.token_hex(8)


class MemoryRoomLog:
    kind = "memory"

    def __init__(
        self,
        space: MemoryKeyspace,
        *,
        maxlen: int = SUPPORT_ROOM_MAXLEN,
        retention: float = SUPPORT_ROOM_RETENTION,
    ) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be >= 1")
        self._space = space
        self._maxlen = maxlen
        self._retention = retention

    def _key(self, room: str) -> str:
        return room_key(room, SUPPORT_ROOM_STREAM)

    def _room(self, room: str, *, create: bool) -> _Room | None:
        found = self._space.get_value(self._key(room), _Room)
        if found is None and create:
            found = _Room(new_epoch())
            self._space.put(self._key(room), found, self._retention)
        return found

    def _signal(self) -> _Signal:
        found = self._space.get_value(SUPPORT_ROOM_SIGNAL, _Signal)
        if found is None:
            found = _Signal()
            self._space.put(SUPPORT_ROOM_SIGNAL, found, None)
        return found

    async def append(self, room: str, payload: bytes) -> tuple[str, int]:
        r = self._room(room, create=True)
        assert r is not None
        r.last += 1
        r.entries.append(RoomEntry(room, r.last, bytes(payload), r.epoch))
        while len(r.entries) > self._maxlen:
            r.entries.popleft()
        self._space.set_ttl(self._key(room), self._retention)
        self._signal().fire()
        return r.epoch, r.last

    async def append_once(
        self,
        room: str,
        payload: bytes,
        *,
        marker: str,
        marker_ttl: float,
        record: bytes | None = None,
    ) -> tuple[str, int, bool]:
        # No await before the append: the check and the append are one step in-process.
        seen = self._space.get_value(marker, bytes)
        if seen is not None:
            stored_epoch, _, stored_offset = seen.decode().rpartition(":")
            return stored_epoch, int(stored_offset), True
        epoch, offset = await self.append(room, payload)
        self._space.put(marker, f"{epoch}:{offset}".encode(), marker_ttl)
        if record is not None:
            add_record(self._space, record)
        return epoch, offset, False

    async def epoch(self, room: str) -> tuple[str, int]:
        r = self._room(room, create=True)
        assert r is not None
        return r.epoch, r.last

    async def since(self, room: str, epoch: str, offset: int, *, limit: int = 500) -> Replay:
        offset = check_since(offset, limit)
        r = self._room(room, create=True)
        assert r is not None
        if epoch != r.epoch or offset > r.last:
            return Replay(r.epoch, False, [], False, r.last)
        if offset == r.last:
            return Replay(r.epoch, True, [], False, r.last)
        oldest = r.entries[0].offset if r.entries else r.last + 1
        if oldest > offset + 1:
            return Replay(r.epoch, False, [], False, r.last)
        entries = _after(r, offset, limit)
        return Replay(r.epoch, True, entries, entries[-1].offset < r.last, r.last)

    async def read_many(
        self, positions: Mapping[str, int], *, block: float | None, count: int = 500
    ) -> list[RoomEntry]:
        found = self._collect(positions, count)
        if found or block is None or block <= 0:
            return found
        if not positions:
            await asyncio.sleep(block)
            return []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + block
        # Woken by any room's append: wait on until one of these rooms has news, as XREAD does.
        while not found and (left := deadline - loop.time()) > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._signal().changed.wait()
            found = self._collect(positions, count)
        return found

    def _collect(self, positions: Mapping[str, int], count: int) -> list[RoomEntry]:
        found: list[RoomEntry] = []
        for room, offset in positions.items():
            r = self._room(room, create=False)
            if r is not None and r.last > offset:
                found.extend(_after(r, offset, count))
        return found

    async def heads(self, rooms: Collection[str]) -> dict[str, tuple[str, int]]:
        heads: dict[str, tuple[str, int]] = {}
        for room in rooms:
            r = self._room(room, create=False)
            if r is not None:
                heads[room] = (r.epoch, r.last)
        return heads

    async def drop(self, room: str) -> None:
        self._space.remove(self._key(room))

    async def close(self) -> None:
        return None


def _after(r: _Room, offset: int, limit: int) -> list[RoomEntry]:
    """Up to ``limit`` retained entries with an offset above ``offset`` (offsets are dense)."""
    if not r.entries:
        return []
    start = max(0, offset + 1 - r.entries[0].offset)
    stop = min(len(r.entries), start + limit)
    return [r.entries[i] for i in range(start, stop)]
