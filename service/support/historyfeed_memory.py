"""The history feed in-process (embedded mode): one record queue in the backends' keyspace.

The room log adds to it (``add_record``) in the same step as the message; every feed made from
the same backends reads the same queue. No method awaits between reading and changing it, so
each call is one atomic step on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Sequence

from service.backends.keys import SUPPORT_HISTORY_CLAIM_IDLE, SUPPORT_HISTORY_STREAM
from service.backends.memory import MemoryKeyspace
from service.support.historyfeed import FedRecord


class _Records:
    def __init__(self) -> None:
        self.waiting: deque[tuple[str, bytes]] = deque()
        #: Taken and not done: id -> (record, when taken, on the loop's clock); oldest first.
        self.taken: dict[str, tuple[bytes, float]] = {}
        self.ids = itertools.count(1)
        self.added = asyncio.Event()


def _records(space: MemoryKeyspace) -> _Records:
    found = space.get_value(SUPPORT_HISTORY_STREAM, _Records)
    if found is None:
        found = _Records()
        space.put(SUPPORT_HISTORY_STREAM, found, None)
    return found


def add_record(space: MemoryKeyspace, record: bytes) -> None:
    """Called by the memory room log with each stored message's record."""
    records = _records(space)
    records.waiting.append((str(next(records.ids)), bytes(record)))
    records.added.set()


class MemoryHistoryFeed:
    kind = "memory"

    def __init__(self, space: MemoryKeyspace, *, claim_idle: float = SUPPORT_HISTORY_CLAIM_IDLE):
        if claim_idle <= 0:
            raise ValueError("claim_idle must be > 0")
        self._space = space
        self._claim_idle = claim_idle

    async def take(self, count: int, *, block: float) -> list[FedRecord]:
        if count < 1:
            raise ValueError("count must be >= 1")
        found = self._take(count)
        if found or block <= 0:
            return found
        records = _records(self._space)
        records.added.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(block):
                await records.added.wait()
        return self._take(count)

    def _take(self, count: int) -> list[FedRecord]:
        records = _records(self._space)
        now = asyncio.get_running_loop().time()
        stale: list[FedRecord] = []
        for ident, (record, at) in records.taken.items():
            if len(stale) >= count or now - at < self._claim_idle:
                break  # oldest first: the rest were taken later
            stale.append(FedRecord(ident, record, retried=True))
        if stale:
            for each in stale:  # taken again now: moved to the end, with the new time
                del records.taken[each.id]
                records.taken[each.id] = (each.record, now)
            return stale
        fresh: list[FedRecord] = []
        while records.waiting and len(fresh) < count:
            ident, record = records.waiting.popleft()
            records.taken[ident] = (record, now)
            fresh.append(FedRecord(ident, record))
        return fresh

    async def done(self, ids: Sequence[str]) -> None:
        taken = _records(self._space).taken
        for ident in ids:
            taken.pop(ident, None)

    async def backlog(self) -> int:
        records = _records(self._space)
        return len(records.waiting) + len(records.taken)

    async def close(self) -> None:
        return None
