"""A connection's deliveries: its own acknowledged messages are not sent back to it."""

from __future__ import annotations

import orjson

from service.support.connection import ACKED_LIMIT, Connection, RoomView
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
    frames = []
    while not conn._outbox.empty():
        frames.append(orjson.loads(conn._outbox.get_nowait() or b"{}")["offset"])
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
