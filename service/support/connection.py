"""One client connection of the support desk: its outbox, its rooms and what it delivered.

Frames to a client go through a bounded outbox drained by one writer task, so a slow client
never blocks the desk or another client; when the outbox is full the connection is closed with
1013 (try again later) and the client resumes from its last offset, losing nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from service.support.people import Person
from service.support.roomlog import RoomEntry

_ids = itertools.count(1)

CLOSE_OVERFLOW = 1013
CLOSE_HEARTBEAT = 4000
#: Own messages acknowledged but not yet passed by the room's delivery (a few: the window).
ACKED_LIMIT = 256


@dataclass
class RoomView:
    """A room as one connection sees it."""

    epoch: str
    subscription: Any  # the hub's subscription: close() stops delivery


@dataclass(eq=False)
class Connection:
    person: Person
    send_text: Callable[[str], Awaitable[None]]
    close: Callable[[int, str], Coroutine[Any, Any, None]]
    outbox_size: int
    id: int = field(default_factory=lambda: next(_ids))
    rooms: dict[str, RoomView] = field(default_factory=dict)
    #: The last queue position this connection was told (so an unchanged one is not resent).
    told_position: int | None = None
    #: Waiting for a room (joined the queue): a sweep checks for an assignment it missed.
    wants_room: bool = False
    #: The last presence frame and desk view sent, so unchanged ones are not sent again.
    last_presence: bytes | None = None
    desk_signature: tuple[Any, ...] | None = None
    closing: str | None = None
    #: (room, epoch, offset) of this connection's own messages whose ``chat:ack`` told it their
    #: place: the room's entry is not sent to it again as ``chat:message``.
    acked: set[tuple[str, str, int]] = field(default_factory=set)
    _outbox: asyncio.Queue[bytes | None] = field(init=False)
    _writer: asyncio.Task[None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._outbox = asyncio.Queue(self.outbox_size)

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write(), name=f"support-writer-{self.id}")

    async def stop(self) -> None:
        for view in self.rooms.values():
            if view.subscription is not None:
                view.subscription.close()
        self.rooms.clear()
        if self._writer is not None:
            if self.closing is None:
                try:
                    self._outbox.put_nowait(None)
                except asyncio.QueueFull:
                    self._writer.cancel()
            try:
                await asyncio.wait_for(self._writer, timeout=5)
            except (TimeoutError, asyncio.CancelledError):
                self._writer.cancel()
            self._writer = None

    def acknowledged(self, room: str, epoch: str, offset: int) -> None:
        """This connection sent the entry at ``offset`` and is told its place by ``chat:ack``."""
        if len(self.acked) >= ACKED_LIMIT:
            # Entries never delivered here (a room left, an epoch lost): an echo is harmless.
            self.acked.clear()
        self.acked.add((room, epoch, offset))

    def send(self, data: bytes) -> None:
        """Queue a frame; never blocks. A full outbox closes the connection (client resumes)."""
        if self.closing is not None:
            return
        try:
            self._outbox.put_nowait(data)
        except asyncio.QueueFull:
            self.closing = "slow consumer: outbox full, resume from your last offset"
            asyncio.get_running_loop().create_task(self.close(CLOSE_OVERFLOW, self.closing[:120]))

    async def flush(self, *, timeout: float) -> None:
        """Let the writer send what is queued (before a close), for at most ``timeout``."""
        if self._writer is None or self.closing is not None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._outbox.join(), timeout)

    def sink(self, room: str) -> Callable[[RoomEntry], None]:
        """What the hub calls with each room entry for this connection (once, in order)."""

        def deliver(entry: RoomEntry) -> None:
            view = self.rooms.get(room)
            if view is None:
                return
            if self.acked:
                own = (room, entry.epoch or view.epoch, entry.offset)
                if own in self.acked:
                    # Its place is already known here (the ack); the hub still counts it as
                    # delivered, so what follows comes in order, once.
                    self.acked.discard(own)
                    return
            self.send(chat_frame(room, view.epoch, entry))

        return deliver

    async def _write(self) -> None:
        while True:
            data = await self._outbox.get()
            try:
                if data is None:
                    return
                await self.send_text(data.decode())
            except Exception:
                # The socket is gone; the reader sees the disconnect and cleans up.
                return
            finally:
                self._outbox.task_done()


def chat_frame(room: str, epoch: str, entry: RoomEntry) -> bytes:
    """``chat:message`` from a stored entry without decoding it: the entry's JSON object is
    spliced after the frame's own fields (its keys never repeat them)."""
    head = b'{"type":"chat:message","room":"%s","epoch":"%s","offset":%d,' % (
        room.encode(),
        epoch.encode(),
        entry.offset,
    )
    return head + entry.payload[1:]
