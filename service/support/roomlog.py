"""Support rooms' message logs: what a reconnecting client missed, exactly once and in order.

Every room has one log in the state backend. Each entry gets the next offset of the room (1, 2,
3, ... without gaps), and the log has an *epoch*, a random name that changes whenever the log's
past is lost (the room was dropped, Redis lost its data, the retention period passed): an
offset means something only together with its epoch. A client that names its last
``(epoch, offset)`` gets every later entry, or ``recovered: False`` when the epoch differs or
the entries right after its offset were trimmed away; it then takes the older history from the
database and continues from ``last_offset``.

Two implementations keep the same observable rules (one contract suite runs against both):
``MemoryRoomLog`` (the embedded mode, state in the backends' in-process keyspace) and
``RedisRoomLog`` (one stream per room, appended to by a Lua script).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

#: Offsets past this are refused by Lua's double precision; no room ever gets near it.
MAX_OFFSET = 2**53 - 1


@dataclass(frozen=True, slots=True)
class RoomEntry:
    room: str
    offset: int  # 1, 2, 3, ... per room per epoch, no gaps
    payload: bytes  # an opaque JSON document given to append
    #: The epoch the offset belongs to; entries read from a log always carry it, an entry
    #: built by the appender should too (``""`` = the epoch the hub knows for the room).
    epoch: str = ""


@dataclass(frozen=True, slots=True)
class Replay:
    epoch: str
    recovered: bool  # False: the epoch differs or the gap is no longer in the stream
    #: When recovered: every entry with offset > the client's, in order, up to the limit.
    entries: list[RoomEntry]
    more: bool  # more entries exist past the limit (read again from the last offset)
    last_offset: int  # the room's newest offset now


class RoomLog(Protocol):
    kind: str  # "memory" or "redis"

    async def append(self, room: str, payload: bytes) -> tuple[str, int]:
        """Atomic: ``(epoch, offset)`` of the new entry; starts a new epoch if there is none."""
        ...

    async def append_once(
        self,
        room: str,
        payload: bytes,
        *,
        marker: str,
        marker_ttl: float,
        record: bytes | None = None,
    ) -> tuple[str, int, bool]:
        """``append`` unless ``marker`` (a key naming the sender's client id) exists: then the
        place it was stored at. Atomic, so a resent message is stored once. ``(epoch, offset,
        duplicate)``; the marker lives ``marker_ttl`` seconds. ``record``: added to the history
        feed (``historyfeed.py``) in the same step when the message is stored, not for a
        duplicate."""
        ...

    async def epoch(self, room: str) -> tuple[str, int]:
        """``(epoch, last offset)``; creates the epoch (with last offset 0) if there is none."""
        ...

    async def since(self, room: str, epoch: str, offset: int, *, limit: int = 500) -> Replay:
        """What a client at ``(epoch, offset)`` missed; one consistent snapshot."""
        ...

    async def read_many(
        self, positions: Mapping[str, int], *, block: float | None, count: int = 500
    ) -> list[RoomEntry]:
        """Entries after each room's offset, across rooms, for the hub; may block up to
        ``block`` s. At most ``count`` per room; each room's in order. Offsets are compared
        whatever the epoch: the caller checks ``RoomEntry.epoch``. ``positions`` is read when
        needed, also after the wait; given again (the same object), it names the same rooms,
        each at the offset it had or a later one."""
        ...

    async def heads(self, rooms: Collection[str]) -> dict[str, tuple[str, int]]:
        """``(epoch, last offset)`` of each room that has an epoch now; creates nothing."""
        ...

    async def drop(self, room: str) -> None:
        """Delete the room's log (room closed); a later append starts a new epoch."""
        ...

    async def close(self) -> None:
        """Release what the log holds of its own (the Redis reader connection)."""
        ...


def check_since(offset: int, limit: int) -> int:
    """The offset to look up, or ValueError; an offset past any possible one stays past."""
    if offset < 0:
        raise ValueError("offset must be >= 0")
    if limit < 1:
        raise ValueError("limit must be >= 1")
    return min(offset, MAX_OFFSET)
