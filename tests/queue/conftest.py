"""Fixtures of the queue tests: one queue per backend (SQLite, MariaDB, Redis) and a clock."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import delete

from core.jobs import BackoffPolicy
from service.backends import redis_backends
from service.db import Database
from service.db.migrate import migrate
from service.db.tables.jobs import queue_attempts, queue_jobs
from service.queue.base import JobQueue
from service.queue.config import QueueConfig
from service.queue.redis_streams import RedisStreamsQueue
from service.queue.sql import SqlOutbox
from tests.fakes.telegram_server import FakeTelegram

#: Short leases so that reclaiming after a worker died takes a fraction of a second.
TEST_CONFIG = QueueConfig(
    default_max_attempts=3,
    backoff=BackoffPolicy(base=0.01, cap=0.05),
    job_timeout=0.5,
    visibility_timeout=0.6,
    poll_interval=0.02,
    shutdown_grace=0.5,
    heartbeat_interval=0.2,
)


class OffsetClock:
    """Real time plus a test-controlled offset: Redis idles in real time, the rest can jump.

    ``freeze`` stops the wall-clock part (``now``) at a given instant, so a test that reads
    ages back can assert exact values instead of timing windows; ``monotonic`` keeps running
    (the Redis queue paces its housekeeping with it).
    """

    def __init__(self) -> None:
        self.offset = 0.0
        self.frozen_at: float | None = None

    def now(self) -> float:
        base = time.time() if self.frozen_at is None else self.frozen_at
        return base + self.offset

    def freeze(self, at: float) -> None:
        self.frozen_at = at

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class QueueUnderTest:
    queue: JobQueue
    db: Database
    clock: OffsetClock
    kind: str  # sqlite | mariadb | redis | redis-cluster


@pytest.fixture
def clock() -> OffsetClock:
    return OffsetClock()


async def _sqlite(tmp_path: Path) -> Database:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'queue.db'}")
    await migrate(db)
    return db


@pytest.fixture(params=["sqlite", "mariadb", "redis", "redis-cluster"])
async def qut(
    request: pytest.FixtureRequest, tmp_path: Path, clock: OffsetClock
) -> AsyncIterator[QueueUnderTest]:
    kind = str(request.param)
    if kind == "mariadb":
        db = Database(request.getfixturevalue("mariadb_url"))
        await _clear(db)
    else:
        db = await _sqlite(tmp_path)
    outbox = SqlOutbox(db, clock, TEST_CONFIG)
    if kind in ("redis", "redis-cluster"):
        if kind == "redis":
            url = request.getfixturevalue("redis_url")
            namespace = request.getfixturevalue("redis_namespace")
        else:  # the same queue on a real 3-master cluster: every script within one slot
            url = request.getfixturevalue("redis_cluster_url")
            namespace = request.getfixturevalue("redis_cluster_namespace")
        backends = redis_backends(url, namespace)
        assert backends.redis is not None
        queue: JobQueue = RedisStreamsQueue(
            backends.redis, backends.key, clock, TEST_CONFIG, outbox=outbox
        )
        yield QueueUnderTest(queue, db, clock, kind)
        await backends.close()
    else:
        yield QueueUnderTest(outbox, db, clock, kind)
    if kind == "mariadb":
        await _clear(db)
    await db.dispose()


async def _clear(db: Database) -> None:
    async with db.begin() as conn:
        await conn.execute(delete(queue_jobs))
        await conn.execute(delete(queue_attempts))


@pytest.fixture
def fake_telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server
