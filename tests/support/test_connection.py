"""A connection's outbox (one frame at a time, in order, bounded) and its deliveries: its own
acknowledged messages are not sent back to it."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from service.support.connection import ACKED_LIMIT, CLOSE_OVERFLOW, Connection, RoomView
from service.support.people import Person
from service.support.roomlog import RoomEntry

ROOM = "cu_1"


async def _close(code: int, reason: str) -> None:
    raise AssertionError("not closed in these tests")


async def _never(text: str) -> None:
    raise AssertionError("the writer is not started in these tests")


def connection() -> Connection:
    person = Person("cu_1", "customer", "Ayşe", "tr")
    conn = Connection(person=person, send_text=_never, close=_close, outbox_size=100)
    conn.rooms[ROOM] = RoomView(epoch="e1", subscription=None)
    return conn


def entry(offset: int, epoch: str = "e1") -> RoomEntry:
    payload = orjson.dumps({"sender": "x", "text": str(offset)})
    return RoomEntry(room=ROOM, offset=offset, payload=payload, epoch=epoch)


def sent(conn: Connection) -> list[int]:
    """The offsets queued for the (not started) connection, taken out."""
    frames = [orjson.loads(data)["offset"] for data in conn._outbox]
    conn._outbox.clear()
    return frames


async def test_an_acknowledged_offset_is_skipped_once_and_the_rest_delivered() -> None:
    conn = connection()
    deliver = conn.sink(ROOM)
    # Own message 3 acknowledged before 2 (from another process) arrived: a gap the hub fills.
    conn.acknowledged(ROOM, "e1", 3)
    for n in (2, 3, 4):
        deliver(entry(n))
    assert sent(conn) == [2, 4]
    assert conn.acked == set()
    # A later copy of 3 (a replay after a reset) is a message again.
    deliver(entry(3))
    assert sent(conn) == [3]


async def test_an_ack_of_another_epoch_or_room_skips_nothing() -> None:
    conn = connection()
    deliver = conn.sink(ROOM)
    conn.acknowledged(ROOM, "e0", 5)  # the log started over since
    conn.acknowledged("cu_2", "e1", 5)
    deliver(entry(5))
    assert sent(conn) == [5]
    # An entry without its epoch is of the epoch the connection follows.
    conn.acknowledged(ROOM, "e1", 6)
    deliver(entry(6, epoch=""))
    assert sent(conn) == []


async def test_acks_never_delivered_are_bounded() -> None:
    conn = connection()
    for n in range(ACKED_LIMIT + 10):
        conn.acknowledged(ROOM, "e0", n)
    assert len(conn.acked) <= ACKED_LIMIT


class Socket:
    """A client socket whose sends complete when the test says (a server's send future)."""

    def __init__(self, *, coroutines: bool = False) -> None:
        self.pending: list[tuple[str, asyncio.Future[None]]] = []
        self.closed: list[tuple[int, str]] = []
        self.coroutines = coroutines

    def send(self, text: str) -> Any:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((text, future))
        if self.coroutines:
            return self._wait(future)
        return future

    @staticmethod
    async def _wait(future: asyncio.Future[None]) -> None:
        await future

    async def close(self, code: int, reason: str) -> None:
        self.closed.append((code, reason))

    def in_flight(self) -> list[str]:
        return [text for text, future in self.pending if not future.done()]

    async def complete(self, error: BaseException | None = None) -> str:
        """Finish the oldest send under way (with ``error``); the loop runs its callbacks."""
        text, future = next((t, f) for t, f in self.pending if not f.done())
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
        for _ in range(3):
            await asyncio.sleep(0)
        return text


def socket_connection(socket: Socket, outbox_size: int = 3) -> Connection:
    person = Person("cu_1", "customer", "Ayşe", "tr")
    return Connection(
        person=person, send_text=socket.send, close=socket.close, outbox_size=outbox_size
    )


@pytest.mark.parametrize("coroutines", [False, True], ids=["futures", "coroutines"])
async def test_frames_go_out_one_at_a_time_in_order(coroutines: bool) -> None:
    socket = Socket(coroutines=coroutines)
    conn = socket_connection(socket)
    conn.send(b"before-start")
    assert socket.pending == []  # nothing goes out before start
    conn.start()
    for _ in range(2):
        await asyncio.sleep(0)
    for n in range(3):
        conn.send(b"f%d" % n)
    assert socket.in_flight() == ["before-start"]  # the next waits for the one under way
    done = [await socket.complete() for _ in range(4)]
    assert done == ["before-start", "f0", "f1", "f2"]
    assert socket.in_flight() == []
    conn.send(b"later")  # idle: goes out at once
    for _ in range(2):
        await asyncio.sleep(0)
    assert socket.in_flight() == ["later"]


async def test_a_full_outbox_closes_with_1013_and_sends_nothing_more() -> None:
    socket = Socket()
    conn = socket_connection(socket, outbox_size=2)
    conn.start()
    for n in range(3):  # one under way, two queued
        conn.send(b"f%d" % n)
    assert socket.closed == []
    conn.send(b"f3")
    await asyncio.sleep(0)
    assert socket.closed and socket.closed[0][0] == CLOSE_OVERFLOW
    assert "resume" in socket.closed[0][1]
    await socket.complete()
    conn.send(b"f4")
    assert socket.in_flight() == []
    assert [text for text, _ in socket.pending] == ["f0"]


def busy_connection(socket: Socket) -> Connection:
    """Started, with f0 under way and f1, f2 queued."""
    conn = socket_connection(socket)
    conn.start()
    for n in range(3):
        conn.send(b"f%d" % n)
    return conn


async def test_a_failed_send_drops_what_is_queued() -> None:
    socket = Socket()
    conn = busy_connection(socket)
    await socket.complete(OSError("gone"))
    assert socket.in_flight() == []
    conn.send(b"f3")
    assert [text for text, _ in socket.pending] == ["f0"]
    await conn.flush(timeout=1)  # nothing to wait for
    await conn.stop()


async def test_flush_waits_for_the_queue_and_stop_sends_what_is_left() -> None:
    socket = Socket()
    conn = busy_connection(socket)
    flushing = asyncio.create_task(conn.flush(timeout=5))
    await asyncio.sleep(0)
    for _ in range(2):
        await socket.complete()
        assert not flushing.done()
    await socket.complete()
    await asyncio.wait_for(flushing, 1)
    # Stop: what is queued still goes out first; then nothing more.
    conn.send(b"last")
    stopping = asyncio.create_task(conn.stop())
    await asyncio.sleep(0)
    assert not stopping.done()
    assert await socket.complete() == "last"
    await asyncio.wait_for(stopping, 1)
    conn.send(b"after")
    assert socket.in_flight() == []


async def test_flush_gives_up_after_its_timeout() -> None:
    socket = Socket()
    conn = socket_connection(socket)
    conn.start()
    conn.send(b"stuck")
    await conn.flush(timeout=0.05)
    assert socket.in_flight() == ["stuck"]
    assert conn._idle == []
