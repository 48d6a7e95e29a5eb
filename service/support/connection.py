"""One client connection of the support desk: its outbox, its rooms and what it delivered.

Frames to a client go out one at a time, in order, through a bounded outbox, so a slow client
never blocks the desk or another client; when the outbox is full the connection is closed with
1013 (try again later) and the client resumes from its last offset, losing nothing.

The outbox is driven by the sends' own completion (a done callback starts the next frame), not
by a writer task per connection: a relay sends one frame per message to each connection, and a
task woken through an ``asyncio.Queue`` for each of them cost about a tenth of the serving
loop at full load (``bench/bench_support.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
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
    #: Sends one text frame; what it returns is awaited (a future, or a coroutine run as a
    #: task) before the next frame goes out. It fails when the socket is gone.
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
    #: Frames waiting for the one under way (``_sending``).
    _outbox: deque[bytes] = field(default_factory=deque, init=False)
    _sending: asyncio.Future[Any] | None = field(default=None, init=False)
    _started: bool = field(default=False, init=False)
    #: Stopped (nothing more goes out) or broken (a send failed: the socket is gone).
    _stopped: bool = field(default=False, init=False)
    _broken: bool = field(default=False, init=False)
    #: ``flush`` calls waiting for the outbox to empty.
    _idle: list[asyncio.Future[None]] = field(default_factory=list, init=False)

    def start(self) -> None:
        """Frames queued so far, and from now on, go out."""
        self._started = True
        if self._sending is None and self._outbox:
            self._start(self._outbox.popleft())

    async def stop(self) -> None:
        for view in self.rooms.values():
            if view.subscription is not None:
                view.subscription.close()
        self.rooms.clear()
        if self.closing is None:
            # What is queued still goes out (the reader's close comes after it).
            await self.flush(timeout=5)
        self._stopped = True
        self._outbox.clear()
        self._wake_idle()

    def acknowledged(self, room: str, epoch: str, offset: int) -> None:
        """This connection sent the entry at ``offset`` and is told its place by ``chat:ack``."""
        if len(self.acked) >= ACKED_LIMIT:
            # Entries never delivered here (a room left, an epoch lost): an echo is harmless.
            self.acked.clear()
        self.acked.add((room, epoch, offset))

    def send(self, data: bytes) -> None:
        """Queue a frame; never blocks. A full outbox closes the connection (client resumes)."""
        if self.closing is not None or self._stopped or self._broken:
            return
        if self._sending is None and self._started and not self._outbox:
            self._start(data)
        elif len(self._outbox) < self.outbox_size:
            self._outbox.append(data)
        else:
            self.closing = "slow consumer: outbox full, resume from your last offset"
            self._outbox.clear()
            self._wake_idle()
            asyncio.get_running_loop().create_task(self.close(CLOSE_OVERFLOW, self.closing[:120]))

    async def flush(self, *, timeout: float) -> None:
        """Let what is queued go out (before a close), for at most ``timeout``."""
        if not self._started or self.closing is not None or self._idle_now():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._idle.append(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(waiter), timeout)
        finally:
            with contextlib.suppress(ValueError):
                self._idle.remove(waiter)

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

    def _idle_now(self) -> bool:
        return self._sending is None and not self._outbox

    def _start(self, data: bytes) -> None:
        try:
            # A server's own send is a future already; a coroutine becomes a task.
            sending = asyncio.ensure_future(self.send_text(data.decode()))
        except Exception:
            self._fail()
            return
        self._sending = sending
        sending.add_done_callback(self._sent)

    def _sent(self, sending: asyncio.Future[Any]) -> None:
        self._sending = None
        if sending.cancelled() or sending.exception() is not None:
            # The socket is gone; the reader sees the disconnect and cleans up.
            self._fail()
        elif self._outbox and not self._stopped and self.closing is None:
            self._start(self._outbox.popleft())
        else:
            self._wake_idle()

    def _fail(self) -> None:
        self._broken = True
        self._outbox.clear()
        self._wake_idle()

    def _wake_idle(self) -> None:
        waiters, self._idle = self._idle, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


def chat_frame(room: str, epoch: str, entry: RoomEntry) -> bytes:
    """``chat:message`` from a stored entry without decoding it: the entry's JSON object is
    spliced after the frame's own fields (its keys never repeat them)."""
    head = b'{"type":"chat:message","room":"%s","epoch":"%s","offset":%d,' % (
        room.encode(),
        epoch.encode(),
        entry.offset,
    )
    return head + entry.payload[1:]
