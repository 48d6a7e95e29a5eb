"""The chat messages on their way into the database: a feed the history writer consumes.

The room log's ``append_once`` adds a stored message's history record to the feed in the same
atomic step as the message, so a message the client saw acknowledged reaches the database
whatever happens to the process that took it: the writer (in the worker, or inside the API
process in the embedded mode) takes records, writes them, and marks them done. A record taken
and never marked done (its writer died) is offered again, as ``retried``, once it has waited
``claim_idle`` seconds: it may be in the database already, and the writer looks it up.

Two implementations keep the same rules (one contract suite runs against both):
``MemoryHistoryFeed`` (embedded mode, in the backends' keyspace) and ``RedisHistoryFeed`` (a
stream read by one consumer group; records are deleted once done, so its length is the backlog).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class FedRecord:
    id: str
    record: bytes
    #: Offered before to a writer that did not finish it: it may be stored already.
    retried: bool = False


class HistoryFeed(Protocol):
    kind: str  # "memory" or "redis"

    async def take(self, count: int, *, block: float) -> list[FedRecord]:
        """Up to ``count`` records for this writer, oldest first: records left over by a
        writer that stopped (``retried``), else new ones; waits up to ``block`` s for one."""
        ...

    async def done(self, ids: Sequence[str]) -> None:
        """The records are in the database: never offered again."""
        ...

    async def backlog(self) -> int:
        """Records added and not yet done (taken ones included)."""
        ...

    async def close(self) -> None:
        """Release what the feed holds of its own (the Redis reader connection)."""
        ...
