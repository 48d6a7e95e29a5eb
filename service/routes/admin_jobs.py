"""Operators' view of the outbound job queue: dead letters (list, replay, discard) and status.

The queue and the worker are set up by the queue feature (``service/queue/feature.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from service.audit import record_audit
from service.endpoint import admin_principal, api
from service.errors import ApiError
from service.queue.base import DeadLetter, JobQueue
from service.queue.ledger import attempts_of
from service.responses import json_response
from service.runtime import get_runtime
from service.validation import parse_body, parse_query

NO_STORE = {"Cache-Control": "no-store"}


class DeadLettersQuery(BaseModel):
    queue: str | None = Field(default=None, max_length=64)
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=100_000)


class DeadLetterQuery(BaseModel):
    key: str = Field(min_length=1, max_length=191)


class AttemptOut(BaseModel):
    attempt: int
    at: float
    outcome: str
    error: str


class DeadLetterOut(BaseModel):
    key: str
    queue: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    last_error: str
    enqueued_at: datetime
    died_at: datetime
    history: list[AttemptOut]


class DeadLettersOut(BaseModel):
    items: list[DeadLetterOut]


class LedgerRowOut(BaseModel):
    attempt: int
    outcome: str
    provider: str | None
    status_code: int | None
    error: str | None
    latency_ms: float
    worker: str
    at: str


class DeadLetterDetailOut(DeadLetterOut):
    ledger: list[LedgerRowOut]


class KeyIn(BaseModel):
    key: str = Field(min_length=1, max_length=191)


class ActionOut(BaseModel):
    key: str
    done: bool


class QueueStatsOut(BaseModel):
    queue: str
    ready: int
    delayed: int
    running: int
    dead: int
    oldest_ready_age_seconds: float


class StatusOut(BaseModel):
    backend: str
    queues: list[QueueStatsOut]
    worker: dict[str, Any] | None


def _queue(request: Request) -> JobQueue:
    queue = get_runtime(request).queue
    if queue is None:
        raise ApiError(503, "backend_unavailable", "the job queue is not set up")
    return queue


def _dead_out(letter: DeadLetter) -> dict[str, Any]:
    return {
        "key": letter.key,
        "queue": letter.queue,
        "payload": letter.payload,
        "attempts": letter.attempts,
        "max_attempts": letter.max_attempts,
        "last_error": letter.last_error,
        "enqueued_at": datetime.fromtimestamp(letter.enqueued_at, UTC),
        "died_at": datetime.fromtimestamp(letter.died_at, UTC),
        "history": [
            {
                "attempt": int(h.get("attempt", 0)),
                "at": float(h.get("at", 0.0)),
                "outcome": str(h.get("outcome", "")),
                "error": str(h.get("error", "")),
            }
            for h in letter.history
        ],
    }


@api(
    "Dead-lettered jobs, most recent first (admin)",
    query=DeadLettersQuery,
    response=DeadLettersOut,
    tags=["queue", "admin"],
    admin=True,
)
async def list_dead_letters(request: Request) -> Response:
    query = parse_query(request, DeadLettersQuery)
    letters = await _queue(request).dead_letters(
        queue=query.queue, limit=query.limit, offset=query.offset
    )
    return json_response({"items": [_dead_out(d) for d in letters]}, headers=NO_STORE)


@api(
    "One dead letter with its attempts ledger (admin)",
    query=DeadLetterQuery,
    response=DeadLetterDetailOut,
    tags=["queue", "admin"],
    responses={404: "No dead letter with this key"},
    admin=True,
)
async def get_dead_letter(request: Request) -> Response:
    query = parse_query(request, DeadLetterQuery)
    letter = await _queue(request).get_dead_letter(query.key)
    if letter is None:
        raise ApiError(404, "not_found", "no dead letter with this key")
    ledger = await attempts_of(get_runtime(request).db, letter.key)
    return json_response({**_dead_out(letter), "ledger": ledger}, headers=NO_STORE)


async def _act_on_dead_letter(
    request: Request, action: str, act: Callable[[JobQueue, str], Awaitable[bool]]
) -> Response:
    principal = admin_principal(request)
    body = await parse_body(request, KeyIn)
    if not await act(_queue(request), body.key):
        raise ApiError(404, "not_found", "no dead letter with this key")
    async with get_runtime(request).db.begin() as conn:
        await record_audit(conn, actor=principal.id, action=action, subject=f"job:{body.key}"[:191])
    return json_response({"key": body.key, "done": True}, headers=NO_STORE)


@api(
    "Queue a dead letter again with a fresh attempt budget (admin; audited)",
    body=KeyIn,
    response=ActionOut,
    tags=["queue", "admin"],
    responses={404: "No dead letter with this key"},
    admin=True,
)
async def replay_dead_letter(request: Request) -> Response:
    return await _act_on_dead_letter(request, "queue.dead_letter.replay", lambda q, k: q.replay(k))


@api(
    "Drop a dead letter for good (admin; audited)",
    body=KeyIn,
    response=ActionOut,
    tags=["queue", "admin"],
    responses={404: "No dead letter with this key"},
    admin=True,
)
async def discard_dead_letter(request: Request) -> Response:
    return await _act_on_dead_letter(
        request, "queue.dead_letter.discard", lambda q, k: q.discard(k)
    )


@api(
    "Queue backlog, dead letters, circuit breakers and the in-process worker (admin)",
    response=StatusOut,
    tags=["queue", "admin"],
    admin=True,
)
async def queue_status(request: Request) -> Response:
    runtime = get_runtime(request)
    queue = _queue(request)
    worker = runtime.worker
    stats = await queue.stats(worker.queues if worker else runtime.handlers.queues())
    worker_info = None
    if worker is not None:
        worker_info = {
            "id": worker.worker_id,
            "queues": worker.queues,
            "in_flight": worker.in_flight,
            "breakers": worker.breakers.publish(),
        }
    return json_response(
        {
            "backend": queue.kind,
            "queues": [
                {
                    "queue": s.queue,
                    "ready": s.ready,
                    "delayed": s.delayed,
                    "running": s.running,
                    "dead": s.dead,
                    "oldest_ready_age_seconds": round(s.oldest_ready_age, 3),
                }
                for s in stats
            ],
            "worker": worker_info,
        },
        headers=NO_STORE,
    )


routes: list[BaseRoute] = [
    Route("/admin/jobs/dead", list_dead_letters, methods=["GET"]),
    Route("/admin/jobs/dead/item", get_dead_letter, methods=["GET"]),
    Route("/admin/jobs/dead/replay", replay_dead_letter, methods=["POST"]),
    Route("/admin/jobs/dead/discard", discard_dead_letter, methods=["POST"]),
    Route("/admin/jobs/status", queue_status, methods=["GET"]),
]
