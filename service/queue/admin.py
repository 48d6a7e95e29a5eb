"""What operators do with the queue: inspect, replay and discard dead letters, read the status.

Replays and discards are audited: the action and its audit row are one decision of an admin,
recorded only when the dead letter existed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from service.audit import record_audit
from service.db import Database
from service.queue.base import DeadLetter, JobQueue, QueueStats
from service.queue.ledger import attempts_of
from service.runtime import Runtime

#: The audit table's subject column.
AUDIT_SUBJECT_CHARS = 191


class DeadLetterAction(StrEnum):
    REPLAY = "replay"
    DISCARD = "discard"

    @property
    def audit_action(self) -> str:
        return f"queue.dead_letter.{self.value}"


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    id: str
    queues: list[str]
    in_flight: int
    breakers: dict[str, str]


@dataclass(frozen=True, slots=True)
class QueueStatus:
    backend: str
    queues: list[QueueStats]
    #: ``None`` where no worker runs in this process (the API pods of the scaled mode).
    worker: WorkerStatus | None


class QueueAdmin:
    """The operators' view of one runtime's queue."""

    def __init__(self, queue: JobQueue, runtime: Runtime) -> None:
        self.queue = queue
        self.runtime = runtime
        self.db: Database = runtime.db

    async def dead_letters(self, *, queue: str | None, limit: int, offset: int) -> list[DeadLetter]:
        return await self.queue.dead_letters(queue=queue, limit=limit, offset=offset)

    async def dead_letter(self, key: str) -> tuple[DeadLetter, list[dict[str, Any]]] | None:
        """The dead letter with its attempts ledger, or ``None`` when there is none."""
        letter = await self.queue.get_dead_letter(key)
        if letter is None:
            return None
        return letter, await attempts_of(self.db, letter.key)

    async def act(self, action: DeadLetterAction, key: str, *, actor: str) -> bool:
        """Replay or discard the dead letter ``key``, audited; False when there is none."""
        done = await (
            self.queue.replay(key) if action is DeadLetterAction.REPLAY else self.queue.discard(key)
        )
        if done:
            async with self.db.begin() as conn:
                await record_audit(
                    conn,
                    actor=actor,
                    action=action.audit_action,
                    subject=f"job:{key}"[:AUDIT_SUBJECT_CHARS],
                )
        return done

    async def status(self) -> QueueStatus:
        worker = self.runtime.worker
        queues = worker.queues if worker is not None else self.runtime.handlers.queues()
        stats = await self.queue.stats(queues)
        worker_status = None
        if worker is not None:
            worker_status = WorkerStatus(
                id=worker.worker_id,
                queues=worker.queues,
                in_flight=worker.in_flight,
                breakers=worker.breakers.publish(),
            )
        return QueueStatus(backend=self.queue.kind, queues=stats, worker=worker_status)
