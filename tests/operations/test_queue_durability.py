"""The Redis Streams queue keeps its jobs across a crash of Redis exactly when Redis keeps an
append-only file, and ``/ready`` tells the operator which case a deployment is in
(``info.queue_persistence``, ``service/queue/persistence.py``; README "Redis durability for the
queue")."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.clock import SYSTEM_CLOCK
from core.jobs import BackoffPolicy, Job
from service.backends import redis_backends
from service.db import Database
from service.db.migrate import migrate
from service.queue.config import QueueConfig
from service.queue.handlers import HandlerRegistry
from service.queue.persistence import NO_AOF_WARNING
from service.queue.redis_streams import RedisStreamsQueue
from service.queue.sql import SqlOutbox
from service.queue.worker import Worker
from service.settings import Settings
from tests.conftest import unique
from tests.operations.redis_server import AOF_ALWAYS, NO_PERSISTENCE, redis_server

Q = "durable"
JOBS = 200
DELAYED_EVERY = 10  # every tenth job is scheduled a second ahead (the delayed set)
CONFIG = QueueConfig(
    backoff=BackoffPolicy(base=0.01, cap=0.05),
    job_timeout=0.5,
    visibility_timeout=0.6,
    poll_interval=0.02,
    shutdown_grace=0.5,
    heartbeat_interval=0.2,
)


async def _queue_then_crash(tmp_path: Path, options: Sequence[str]) -> tuple[list[str], int]:
    """Queues the jobs, kills Redis (SIGKILL) and starts it again from its folder, then runs a
    worker until every job ran (or 30 s passed). The keys the handler ran, and the number of
    keys Redis held right after the restart."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'queue.db'}")
    await migrate(db)
    ran: list[str] = []

    async def handler(job: Job) -> None:
        ran.append(job.key)

    handlers = HandlerRegistry()
    handlers.register(Q, handler)
    with redis_server(tmp_path, options) as redis:
        backends = redis_backends(redis.url, unique("ops"))
        assert backends.redis is not None
        outbox = SqlOutbox(db, SYSTEM_CLOCK, CONFIG)
        queue = RedisStreamsQueue(backends.redis, backends.key, SYSTEM_CLOCK, CONFIG, outbox=outbox)
        try:
            for n in range(JOBS):
                delay = 1.0 if n % DELAYED_EVERY == 0 else 0.0
                assert await queue.enqueue(Q, {"n": n}, key=f"job-{n}", delay=delay)
            redis.kill()
            redis.start()  # the same port and folder: Redis replays what it kept, if anything
            kept = redis.key_count()
            if kept:
                worker = Worker(queue, CONFIG, SYSTEM_CLOCK, handlers=handlers, queues=[Q])
                await worker.start()
                try:
                    deadline = asyncio.get_running_loop().time() + 30
                    while len(ran) < JOBS and asyncio.get_running_loop().time() < deadline:
                        await asyncio.sleep(0.05)
                finally:
                    await worker.stop()
        finally:
            await backends.close()
            await db.dispose()
    return ran, kept


@pytest.mark.slow
async def test_jobs_queued_before_a_redis_kill_are_all_processed_with_an_aof(
    tmp_path: Path,
) -> None:
    ran, _ = await _queue_then_crash(tmp_path, AOF_ALWAYS)
    assert sorted(ran) == sorted(f"job-{n}" for n in range(JOBS))  # each once, none lost


@pytest.mark.slow
async def test_without_persistence_a_redis_kill_loses_the_queued_jobs(tmp_path: Path) -> None:
    """Why the README asks for an append-only file: the same crash, and nothing is left."""
    assert await _queue_then_crash(tmp_path, NO_PERSISTENCE) == ([], 0)


# ---------------------------------------------------------------- /ready


async def _persistence(
    tmp_path: Path,
    options: Sequence[str],
    make_settings: Callable[..., Settings],
    make_client: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]],
) -> dict[str, Any]:
    with redis_server(tmp_path, options) as redis:
        settings = make_settings(redis_url=redis.url, queue_backend="redis")
        async with make_client(settings) as client:
            response = await client.get("/ready")
    body = response.json()
    info = body["info"] if response.status_code == 200 else body["error"]["details"]["info"]
    found: dict[str, Any] = info["queue_persistence"]
    return found


async def test_ready_shows_an_aof_with_fsync_always_as_losing_nothing(
    tmp_path: Path, make_settings: Callable[..., Settings], make_client: Any
) -> None:
    found = await _persistence(tmp_path, AOF_ALWAYS, make_settings, make_client)
    assert found["backend"] == "redis"
    assert (found["appendonly"], found["appendfsync"], found["snapshots"]) == (
        "yes",
        "always",
        "off",
    )
    assert found["loss_on_crash"].startswith("nothing")
    assert found["warning"] is None


async def test_ready_warns_when_the_queue_redis_keeps_no_aof(
    tmp_path: Path, make_settings: Callable[..., Settings], make_client: Any
) -> None:
    found = await _persistence(
        tmp_path, ("--save", "3600 1", "--appendonly", "no"), make_settings, make_client
    )
    assert (found["appendonly"], found["snapshots"]) == ("no", "3600 1")
    assert found["loss_on_crash"] == "every job queued since the last snapshot"
    assert found["warning"] == NO_AOF_WARNING


async def test_ready_says_unknown_where_a_managed_redis_refuses_config(
    tmp_path: Path, make_settings: Callable[..., Settings], make_client: Any
) -> None:
    found = await _persistence(
        tmp_path,
        ("--appendonly", "yes", "--appendfsync", "everysec", "--rename-command", "CONFIG", ""),
        make_settings,
        make_client,
    )
    # INFO still says whether the append-only file is on; how often it is synced is unknown.
    assert (found["appendonly"], found["appendfsync"], found["snapshots"]) == (
        "yes",
        "unknown",
        "unknown",
    )
    assert found["loss_on_crash"] == "unknown"
    assert found["warning"] is None


async def test_ready_shows_the_sql_outbox_as_durable_as_the_database(
    make_settings: Callable[..., Settings], make_client: Any
) -> None:
    async with make_client(make_settings()) as client:
        response = await client.get("/ready")
    assert response.json()["info"]["queue_persistence"]["backend"] == "sql"
