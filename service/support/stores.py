"""The live-support stores on the process's state backend: the wait queue, the room logs and
the history feed.

A module of its own so that each interface module stays below its two implementations.
"""

from __future__ import annotations

from core.support.eta import DEFAULT_ALPHA
from service.backends import Backends
from service.support.historyfeed import HistoryFeed
from service.support.historyfeed_memory import MemoryHistoryFeed
from service.support.historyfeed_redis import RedisHistoryFeed
from service.support.roomlog import RoomLog
from service.support.roomlog_memory import MemoryRoomLog
from service.support.roomlog_redis import RedisRoomLog
from service.support.waitqueue import WaitQueue
from service.support.waitqueue_memory import MemoryWaitQueue
from service.support.waitqueue_redis import RedisWaitQueue


def create_wait_queue(backends: Backends, *, alpha: float = DEFAULT_ALPHA) -> WaitQueue:
    """The queue on the process's state backend; ``alpha`` weighs new handle times."""
    if backends.kind == "redis":
        return RedisWaitQueue(backends, alpha=alpha)
    return MemoryWaitQueue(alpha=alpha)


def create_room_log(backends: Backends) -> RoomLog:
    """The room logs on the process's state backend. Memory logs made from one ``Backends``
    share their rooms (they live in its keyspace); close a Redis one when done."""
    if backends.kind == "redis":
        return RedisRoomLog(backends)
    if backends.keyspace is None:
        raise ValueError("memory backends without a keyspace")
    return MemoryRoomLog(backends.keyspace)


def create_history_feed(backends: Backends) -> HistoryFeed:
    """The history feed on the process's state backend (what the room logs made from the same
    backends add to); close it when done."""
    if backends.kind == "redis":
        return RedisHistoryFeed(backends)
    if backends.keyspace is None:
        raise ValueError("memory backends without a keyspace")
    return MemoryHistoryFeed(backends.keyspace)
