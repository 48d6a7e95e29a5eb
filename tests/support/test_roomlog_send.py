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
