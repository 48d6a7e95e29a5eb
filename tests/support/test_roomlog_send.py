"""``append_once``: a message stored at most once per client id, over memory and real Redis."""

from __future__ import annotations

import asyncio

from service.backends import Backends
from service.support.stores import create_room_log


async def test_a_resent_client_id_gets_the_first_place_back(backends: Backends) -> None:
    log = create_room_log(backends)
    try:
        first = await log.append_once("r1", b'{"t":1}', marker="cid:a:1", marker_ttl=60)
        assert first[1:] == (1, False)
        again = await log.append_once("r1", b'{"t":"other"}', marker="cid:a:1", marker_ttl=60)
        assert again == (first[0], 1, True)
        other = await log.append_once("r1", b'{"t":2}', marker="cid:a:2", marker_ttl=60)
        assert other[1:] == (2, False)
        replay = await log.since("r1", first[0], 0)
        assert [e.payload for e in replay.entries] == [b'{"t":1}', b'{"t":2}']
    finally:
        await log.close()


async def test_concurrent_resends_store_once(backends: Backends) -> None:
    log = create_room_log(backends)
    try:
        results = await asyncio.gather(
            *(log.append_once("r2", b'{"t":1}', marker="cid:b:1", marker_ttl=60) for _ in range(20))
        )
        assert sum(1 for _, _, duplicate in results if not duplicate) == 1
        assert {offset for _, offset, _ in results} == {1}
        epoch, last = await log.epoch("r2")
        assert last == 1 and {e for e, _, _ in results} == {epoch}
    finally:
        await log.close()


async def test_the_marker_expires(backends: Backends) -> None:
    log = create_room_log(backends)
    try:
        await log.append_once("r3", b"{}", marker="cid:c:1", marker_ttl=0.05)
        await asyncio.sleep(0.15)
        assert (await log.append_once("r3", b"{}", marker="cid:c:1", marker_ttl=60))[1:] == (
            2,
            False,
        )
    finally:
        await log.close()


async def test_sends_of_one_turn_keep_each_rooms_order_and_dedupe(backends: Backends) -> None:
    """Many senders at once (on one Redis server: one script call for the turn's sends) across
    rooms: each room's offsets dense, each sender told the place its own message is at, a
    client id given twice stored once, a dropped room starting a new epoch, and the news
    telling a reader of every room."""
    log = create_room_log(backends)
    try:
        old_epoch, _ = await log.append("gone", b'{"n":0}')
        await log.drop("gone")
        sends = [
            log.append_once(room, b'{"n":%d}' % n, marker=f"cid:s:{room}:{n}", marker_ttl=60)
            for n in range(1, 6)
            for room in ("t1", "t2", "gone")
        ]
        sends.append(log.append_once("t1", b'{"n":1}', marker="cid:s:t1:1", marker_ttl=60))
        results = await asyncio.gather(*sends)
        # "t1"'s first client id twice: one of the two stored, both told the same place.
        first, again = results[0], results.pop()
        assert first[:2] == again[:2] and {first[2], again[2]} == {True, False}
        results[0] = (*first[:2], False)
        assert not any(duplicate for _, _, duplicate in results)
        for index, room in enumerate(("t1", "t2", "gone")):
            mine = results[index::3]
            assert sorted(offset for _, offset, _ in mine) == [1, 2, 3, 4, 5]
            epoch, last = await log.epoch(room)
            assert last == 5 and {e for e, _, _ in mine} == {epoch}
            replay = await log.since(room, epoch, 0)
            stored = {e.offset: e.payload for e in replay.entries}
            assert {offset: b'{"n":%d}' % n for n, (_, offset, _) in enumerate(mine, 1)} == stored
        assert (await log.epoch("gone"))[0] != old_epoch
        read = await log.read_many({"t1": 3, "t2": 0, "gone": 4}, block=None)
        assert sorted((e.room, e.offset) for e in read) == sorted(
            [("t1", 4), ("t1", 5), *(("t2", n) for n in range(1, 6)), ("gone", 5)]
        )
    finally:
        await log.close()
