"""Operators' view of the outbound job queue: dead letters (list, replay, discard) and status.

The queue and the worker are set up by the queue feature (``service/queue/feature.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from service.endpoint import admin_principal, api
from service.errors import ApiError
from service.queue.admin import DeadLetterAction, QueueAdmin
from service.queue.base import DeadLetter
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


def _admin(request: Request) -> QueueAdmin:
    runtime = get_runtime(request)
    if runtime.queue is None:
        raise ApiError(503, "backend_unavailable", "the job queue is not set up")
    return QueueAdmin(runtime.queue, runtime)


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


NO_DEAD_LETTER = "No dead letter with this key"


@api(
    "Dead-lettered jobs, most recent first (admin)",
    query=DeadLettersQuery,
    response=DeadLettersOut,
    tags=["queue", "admin"],
    admin=True,
)
async def list_dead_letters(request: Request) -> Response:
    query = parse_query(request, DeadLettersQuery)
    letters = await _admin(request).dead_letters(
        queue=query.queue, limit=query.limit, offset=query.offset
    )
    return json_response({"items": [_dead_out(d) for d in letters]}, headers=NO_STORE)


@api(
    "One dead letter with its attempts ledger (admin)",
    query=DeadLetterQuery,
    response=DeadLetterDetailOut,
    tags=["queue", "admin"],
    responses={404: NO_DEAD_LETTER},
    admin=True,
)
async def get_dead_letter(request: Request) -> Response:
    query = parse_query(request, DeadLetterQuery)
    found = await _admin(request).dead_letter(query.key)
    if found is None:
        raise ApiError(404, "not_found", "no dead letter with this key")
    letter, ledger = found
    return json_response({**_dead_out(letter), "ledger": ledger}, headers=NO_STORE)


async def _act(request: Request, action: DeadLetterAction) -> Response:
    principal = admin_principal(request)
    body = await parse_body(request, KeyIn)
    if not await _admin(request).act(action, body.key, actor=principal.id):
        raise ApiError(404, "not_found", "no dead letter with this key")
    return json_response({"key": body.key, "done": True}, headers=NO_STORE)


@api(
    "Queue a dead letter again with a fresh attempt budget (admin; audited)",
    body=KeyIn,
    response=ActionOut,
    tags=["queue", "admin"],
    responses={404: NO_DEAD_LETTER},
    admin=True,
)
async def replay_dead_letter(request: Request) -> Response:
    return await _act(request, DeadLetterAction.REPLAY)


@api(
    "Drop a dead letter for good (admin; audited)",
    body=KeyIn,
    response=ActionOut,
    tags=["queue", "admin"],
    responses={404: NO_DEAD_LETTER},
    admin=True,
)
async def discard_dead_letter(request: Request) -> Response:
    return await _act(request, DeadLetterAction.DISCARD)


@api(
    "Queue backlog, dead letters, circuit breakers and the in-process worker (admin)",
    response=StatusOut,
    tags=["queue", "admin"],
    admin=True,
)
async def queue_status(request: Request) -> Response:
    status = await _admin(request).status()
    worker = status.worker
    return json_response(
        {
            "backend": status.backend,
            "queues": [
                {
                    "queue": s.queue,
                    "ready": s.ready,
                    "delayed": s.delayed,
                    "running": s.running,
                    "dead": s.dead,
                    "oldest_ready_age_seconds": round(s.oldest_ready_age, 3),
                }
                for s in status.queues
            ],
            "worker": None
            if worker is None
            else {
                "id": worker.id,
                "queues": worker.queues,
                "in_flight": worker.in_flight,
                "breakers": worker.breakers,
            },
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
