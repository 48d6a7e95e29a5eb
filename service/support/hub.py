"""The per-process fan-out of room entries to the connections (sinks) in this process.

One hub per process, with one reader task for all its rooms: it reads every subscribed room
from the lowest offset any of its sinks has been given (``RoomLog.read_many``, one blocking call
for all rooms) and hands each entry to every sink waiting for exactly that offset. A second
task, the filler, serves the sinks the reader cannot: new subscriptions (a catch-up ``since``
from their ``after``), sinks that saw a gap, and sinks whose epoch changed.

The one rule, kept by every path that delivers (the reader, the filler, ``deliver_local``):
a sink gets an entry only if the entry's epoch is the sink's and its offset is the sink's last
delivered offset plus one. So no path can deliver an offset twice or out of order, and the paths
need no coordination: whichever comes first delivers, the others' copies are dropped. A path
that sees a later offset (a gap) never skips it: the sink is handed to the filler.

When a sink's epoch is gone (``since`` says ``recovered: False``), the sink's ``on_reset`` is
called with the new epoch and its last offset, and the sink continues after that offset: what
came before is for the client to fetch from the history, exactly as after a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping

from core.errors import KervanError
from service.logging import get_logger
from service.support.roomlog import RoomEntry, RoomLog

log = get_logger("kervan.support.hub")

Sink = Callable[[RoomEntry], None]
OnReset = Callable[[str, int], None]

#: Rooms caught up at once by the filler (each one ``since`` call at a time).
FILL_CONCURRENCY = 16
#: Rooms whose heads one periodic check reads (a check of 500 rooms every second was a few
#: milliseconds of the serving loop at once, growing with the rooms).
HEADS_PER_CHECK = 64


class Subscription:
    """One sink's place in one room; ``close()`` stops its deliveries (idempotent)."""

    __slots__ = ("_hub", "closed", "epoch", "last", "on_reset", "room", "sink")

    def __init__(
        self,
        hub: RoomHub,
        room: str,
        sink: Sink,
        on_reset: OnReset | None,
        epoch: str | None,
        last: int,
    ) -> None:
        self._hub = hub
        self.room = room
        self.sink = sink
        self.on_reset = on_reset
        #: The epoch ``last`` belongs to; None until the hub learns the room's current one.
        self.epoch = epoch
        #: The last offset delivered to the sink (or its ``after``).
        self.last = last
        self.closed = False

    def close(self) -> None:
        self._hub._remove(self)


class _Positions(Mapping[str, int]):
    """What the reader asks for: the rooms it follows, fixed when made (the hub makes another
    when its subscriptions change), each at the lowest offset its followers were given *now*:
    a read that waited sees the deliveries made meanwhile (this process's own sends), so it
    does not fetch again what was already delivered."""

    __slots__ = ("_subs",)

    def __init__(self, subs: dict[str, list[Subscription]]) -> None:
        self._subs = subs

    def __getitem__(self, room: str) -> int:
        return min([s.last for s in self._subs[room]])

    def __iter__(self) -> Iterator[str]:
        return iter(self._subs)

    def __len__(self) -> int:
        return len(self._subs)


class _Room:
    __slots__ = ("epoch", "subs")

    def __init__(self) -> None:
        #: The room's epoch as the hub last confirmed it (set by the filler only).
        self.epoch: str | None = None
        self.subs: list[Subscription] = []


class RoomHub:
    """A runtime component: ``start()`` runs the reader and the filler, ``stop()`` ends both."""

    name = "support-room-hub"

    def __init__(
        self,
        log: RoomLog,
        *,
        block: float = 0.25,
        batch: int = 500,
        check_every: float = 1.0,
        heads_per_check: int = HEADS_PER_CHECK,
        backoff: float = 0.05,
        backoff_cap: float = 2.0,
    ) -> None:
        if block <= 0 or batch < 1:
            raise ValueError("block must be > 0 and batch >= 1")
        self._log = log
        self._block = block
        self._batch = batch
        self._check_every = check_every
        if heads_per_check < 1:
            raise ValueError("heads_per_check must be >= 1")
        self._heads_per_check = heads_per_check
        self._heads_cursor = 0
        self._backoff = backoff
        self._backoff_cap = backoff_cap
        self._rooms: dict[str, _Room] = {}
        #: The reader's positions; None after any change of who follows which room (made
        #: again then). Made for every read, they would cost O(rooms) for each message.
        self._positions_now: _Positions | None = None
        #: Sinks the filler must serve -> the mark's number (a newer mark outlives a fill).
        self._pending: dict[Subscription, int] = {}
        self._marks = itertools.count(1)
        self._fill_wanted = asyncio.Event()
        self._rooms_changed = asyncio.Event()
        self._check_now = True
        self._reader_ok = True
        self._filler_ok = True
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    # --- the component -------------------------------------------------------------------
    async def start(self) -> None:
        if self._tasks:
            return
        self._stopping = False
        self._check_now = True
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._read_loop(), name=f"{self.name}-reader"),
            loop.create_task(self._fill_loop(), name=f"{self.name}-filler"),
        ]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return
        # The flag too: a cancellation can be lost inside a library call (redis-py 8.1 now
        # and then returns normally from a cancelled blocking XREAD), and the loops then end
        # at their next turn instead of running on.
        self._stopping = True
        self._fill_wanted.set()
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                log.error("support room hub task failed", exc_info=task.exception())

    @property
    def healthy(self) -> bool:
        """False while the state backend fails the hub's reads (it retries by itself)."""
        return self._reader_ok and self._filler_ok

    # --- subscribers ---------------------------------------------------------------------
    def subscribe(
        self,
        room: str,
        sink: Sink,
        *,
        after: int,
        epoch: str | None = None,
        on_reset: OnReset | None = None,
    ) -> Subscription:
        """Deliver every entry of ``room`` with an offset above ``after`` to ``sink``, once
        each and in order. ``epoch`` names the epoch ``after`` belongs to (from ``epoch()``,
        ``since()`` or ``append()``); without it, the room's current epoch. ``on_reset`` is
        called when that epoch is gone; the sink then continues after the offset it is given.
        """
        if after < 0:
            raise ValueError("after must be >= 0")
        sub = Subscription(self, room, sink, on_reset, epoch, after)
        self._rooms.setdefault(room, _Room()).subs.append(sub)
        self._positions_now = None
        self._want_fill(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        if sub.closed:
            return
        sub.closed = True
        self._pending.pop(sub, None)
        self._positions_now = None
        room = self._rooms.get(sub.room)
        if room is None:
            return
        with contextlib.suppress(ValueError):
            room.subs.remove(sub)
        if not room.subs:
            del self._rooms[sub.room]

    def deliver_local(self, entry: RoomEntry) -> None:
        """An entry this process just appended: delivered at once to the sinks it is next
        for; the reader's later copy is then dropped. Sinks still behind get it from the
        reader, in order."""
        room = self._rooms.get(entry.room)
        if room is None or room.epoch is None:
            return
        if entry.epoch and entry.epoch != room.epoch:
            # A new epoch the hub has not confirmed yet: the filler resets the sinks.
            self._check_room(room)
            return
        self._offer(room, entry, room.epoch, gaps=False)

    async def publish(self, room: str, payload: bytes) -> RoomEntry:
        """Append to the room's log and deliver locally; the entry as stored."""
        epoch, offset = await self._log.append(room, payload)
        entry = RoomEntry(room, offset, payload, epoch)
        self.deliver_local(entry)
        return entry

    # --- delivery ------------------------------------------------------------------------
    def _offer(self, room: _Room, entry: RoomEntry, epoch: str, *, gaps: bool) -> None:
        # A copy: a sink may subscribe or close from inside its callback.
        for sub in tuple(room.subs):
            if sub.closed or sub.epoch != epoch:
                continue
            if entry.offset == sub.last + 1:
                sub.last = entry.offset
                try:
                    sub.sink(entry)
                except Exception:
                    log.exception("a support room sink failed", extra={"room": entry.room})
            elif gaps and entry.offset > sub.last + 1:
                self._want_fill(sub)

    def _reset(self, sub: Subscription, epoch: str, last: int) -> None:
        sub.epoch = epoch
        sub.last = last
        self._positions_now = None
        if sub.on_reset is None:
            return
        try:
            sub.on_reset(epoch, last)
        except Exception:
            log.exception("a support room reset callback failed", extra={"room": sub.room})

    def _want_fill(self, sub: Subscription) -> None:
        if sub.closed:
            return
        self._pending[sub] = next(self._marks)
        self._positions_now = None
        self._fill_wanted.set()
        self._rooms_changed.set()

    def _check_room(self, room: _Room) -> None:
        for sub in room.subs:
            self._want_fill(sub)

    def _adopt_epoch(self, room: _Room, epoch: str) -> None:
        if room.epoch == epoch:
            return
        room.epoch = epoch
        self._positions_now = None
        for sub in room.subs:
            if sub.epoch is not None and sub.epoch != epoch:
                self._want_fill(sub)

    # --- the reader ----------------------------------------------------------------------
    def _positions(self) -> Mapping[str, int]:
        if self._positions_now is None:
            following: dict[str, list[Subscription]] = {}
            for name, room in self._rooms.items():
                if room.epoch is None:
                    continue
                subs = [s for s in room.subs if s.epoch == room.epoch and s not in self._pending]
                if subs:
                    following[name] = subs
            self._positions_now = _Positions(following)
        return self._positions_now

    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        delay = 0.0
        next_check = loop.time()
        while not self._stopping:
            positions = self._positions()
            if not positions:
                self._rooms_changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._block):
                        await self._rooms_changed.wait()
                continue
            try:
                if self._check_now or loop.time() >= next_check:
                    await self._check_heads()
                    next_check = loop.time() + self._check_every
                entries = await self._log.read_many(positions, block=self._block, count=self._batch)
            except Exception as error:
                if self._stopping:
                    return
                self._reader_ok = False
                # After an outage the data may be gone: compare epochs first thing.
                self._check_now = True
                delay = min(self._backoff_cap, delay * 2 or self._backoff)
                _log_failure("reader", error, delay)
                await asyncio.sleep(delay)
                continue
            delay = 0.0
            self._reader_ok = True
            self._dispatch(entries)

    async def _check_heads(self) -> None:
        """A room whose log changed epoch with no entry above the hub's position yet shows
        nothing to the reader: the heads show it. Every room after a start or an outage
        (``_check_now``); otherwise the next ``heads_per_check`` rooms in turn, so a periodic
        check reads the same number of heads however many rooms the hub follows."""
        if self._check_now or len(self._rooms) <= self._heads_per_check:
            names = list(self._rooms)
        else:
            rooms = list(self._rooms)
            start = self._heads_cursor % len(rooms)
            names = rooms[start : start + self._heads_per_check]
            names += rooms[: self._heads_per_check - len(names)]
            self._heads_cursor = start + len(names)
        heads = await self._log.heads(names)
        self._check_now = False
        for name, (epoch, _) in heads.items():
            room = self._rooms.get(name)
            if room is not None and room.epoch is not None and epoch != room.epoch:
                self._check_room(room)

    def _dispatch(self, entries: list[RoomEntry]) -> None:
        changed: set[str] = set()
        for entry in entries:
            room = self._rooms.get(entry.room)
            if room is None or room.epoch is None or entry.room in changed:
                continue
            if entry.epoch and entry.epoch != room.epoch:
                changed.add(entry.room)
                self._check_room(room)
                continue
            self._offer(room, entry, room.epoch, gaps=True)

    # --- the filler ----------------------------------------------------------------------
    async def _fill_loop(self) -> None:
        delay = 0.0
        while not self._stopping:
            await self._fill_wanted.wait()
            self._fill_wanted.clear()
            if self._stopping:
                return
            errors = await self._fill_pending()
            self._rooms_changed.set()
            if not errors:
                delay = 0.0
                self._filler_ok = True
                continue
            self._filler_ok = False
            delay = min(self._backoff_cap, delay * 2 or self._backoff)
            _log_failure("catch-up", errors[0], delay)
            await asyncio.sleep(delay)
            self._fill_wanted.set()

    async def _fill_pending(self) -> list[Exception]:
        marks = dict(self._pending)
        by_room: dict[str, list[Subscription]] = defaultdict(list)
        for sub in marks:
            by_room[sub.room].append(sub)
        limit = asyncio.Semaphore(FILL_CONCURRENCY)
        results = await asyncio.gather(
            *(self._fill_marked(name, subs, marks, limit) for name, subs in by_room.items()),
            return_exceptions=True,
        )
        errors: list[Exception] = []
        for result in results:
            if isinstance(result, Exception):
                errors.append(result)
            elif isinstance(result, BaseException):
                raise result
        return errors

    async def _fill_marked(
        self,
        name: str,
        subs: list[Subscription],
        marks: dict[Subscription, int],
        limit: asyncio.Semaphore,
    ) -> None:
        async with limit:
            await self._fill_room(name, subs)
        # Only the marks this fill answered: a sink marked again meanwhile stays pending.
        for sub in subs:
            if self._pending.get(sub) == marks[sub]:
                del self._pending[sub]
                self._positions_now = None

    async def _fill_room(self, name: str, subs: list[Subscription]) -> None:
        room = self._rooms.get(name)
        if room is None:
            return
        if any(s.epoch is None for s in subs):
            if room.epoch is None:
                current, _ = await self._log.epoch(name)
                self._adopt_epoch(room, current)
            for sub in subs:
                if sub.epoch is None:
                    sub.epoch = room.epoch
                    self._positions_now = None
        for epoch in dict.fromkeys(s.epoch for s in subs):
            assert epoch is not None
            await self._fill_epoch(room, name, epoch, subs)

    async def _fill_epoch(
        self, room: _Room, name: str, epoch: str, subs: list[Subscription]
    ) -> None:
        while True:
            # Sinks that closed or were reset meanwhile are no longer this fill's.
            live = [s for s in subs if not s.closed and s.epoch == epoch]
            if not live:
                return
            asked = {s: s.last for s in live}
            replay = await self._log.since(name, epoch, min(asked.values()), limit=self._batch)
            self._adopt_epoch(room, replay.epoch)
            live = [s for s in live if not s.closed and s.epoch == epoch]
            # The reply is a snapshot from before the sinks' latest local deliveries: a sink
            # that moved on meanwhile has its offsets, and is checked again rather than reset.
            moved = [s for s in live if s.last != asked[s]]
            if not replay.recovered:
                for sub in live:
                    if replay.epoch != epoch or sub not in moved:
                        self._reset(sub, replay.epoch, replay.last_offset)
                    else:
                        self._want_fill(sub)
                return
            for entry in replay.entries:
                self._offer(room, entry, epoch, gaps=False)
            if not replay.more:
                # A sink told an offset this epoch never reached cannot be served exactly.
                for sub in live:
                    if sub not in moved and asked[sub] > replay.last_offset:
                        self._reset(sub, replay.epoch, replay.last_offset)
                return


def _log_failure(what: str, error: Exception, delay: float) -> None:
    message = error.message if isinstance(error, KervanError) else repr(error)
    log.warning("support room hub %s failed, retrying in %.2f s: %s", what, delay, message)
