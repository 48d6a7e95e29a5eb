"""Outbound job queue: no-op jobs end to end and enqueue-to-start latency, one run.

Backends, each with kervan's full worker (leases, fencing, attempts ledger, metrics):

- Redis Streams against the ``saq`` library on the same Redis server, same concurrency.
  Goal: at least 2x saq's throughput, and a p99 start latency under 20 ms.
- The SQL outbox on SQLite (embedded default) and on MariaDB.

Throughput: N no-op jobs enqueued by 32 concurrent producers while one worker (concurrency 32)
drains them; jobs/s = N / (time from the first enqueue to the last job's completion).
Start latency: jobs enqueued one at a time at a steady rate (idle worker), measuring
enqueue -> handler start. For the SQL outbox two figures: the embedded default (producer and
worker in one process, the enqueue wakes the worker) and a producer elsewhere (the worker only
polls, every ``--poll`` seconds).

    .venv/bin/python bench/bench_queue.py [--redis-url URL] [--mariadb-url URL] [--jobs N]

Prints a table and writes bench/results/queue.json.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import pymysql  # noqa: E402
from redis.asyncio import Redis  # noqa: E402
from saq import Queue as SaqQueue  # noqa: E402
from saq import Worker as SaqWorker  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from core.clock import SYSTEM_CLOCK  # noqa: E402
from core.jobs import Job  # noqa: E402
from service.backends.redis import create_redis_client  # noqa: E402
from service.db import Database  # noqa: E402
from service.db.migrate import migrate  # noqa: E402
from service.queue.base import JobQueue  # noqa: E402
from service.queue.config import QueueConfig  # noqa: E402
from service.queue.handlers import HandlerRegistry  # noqa: E402
from service.queue.ledger import AttemptLedger  # noqa: E402
from service.queue.redis_streams import RedisStreamsQueue  # noqa: E402
from service.queue.sql import SqlOutbox  # noqa: E402
from service.queue.worker import Worker  # noqa: E402

CONCURRENCY = 32
PRODUCERS = 32
LATENCY_RATE = 200.0  # jobs/s for the latency run: well below every backend's capacity
QUEUE = "bench"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class Probe:
    """Counts completions and records enqueue -> start delays (perf_counter, one process)."""

    def __init__(self) -> None:
        self.expected = 0
        self.done = 0
        self.delays: list[float] = []
        self.finished = asyncio.Event()
        self.last_done = 0.0

    def reset(self, expected: int) -> None:
        self.expected, self.done, self.delays = expected, 0, []
        self.finished = asyncio.Event()

    def started(self, enqueued_at: float) -> None:
        self.delays.append(time.perf_counter() - enqueued_at)

    def completed(self) -> None:
        self.done += 1
        if self.done >= self.expected:
            self.last_done = time.perf_counter()
            self.finished.set()


async def produce(enqueue: Callable[[int], Awaitable[Any]], n: int) -> None:
    counter = iter(range(n))

    async def producer() -> None:
        for i in counter:
            await enqueue(i)

    await asyncio.gather(*(producer() for _ in range(PRODUCERS)))


async def measure(
    enqueue: Callable[[int, float], Awaitable[Any]], probe: Probe, jobs: int, latency_jobs: int
) -> dict[str, float]:
    probe.reset(jobs)
    started = time.perf_counter()
    await produce(lambda i: enqueue(i, time.perf_counter()), jobs)
    await asyncio.wait_for(probe.finished.wait(), 600)
    throughput = jobs / (probe.last_done - started)

    probe.reset(latency_jobs)
    for i in range(latency_jobs):
        await enqueue(jobs + i, time.perf_counter())
        await asyncio.sleep(1 / LATENCY_RATE)
    await asyncio.wait_for(probe.finished.wait(), 120)
    delays = probe.delays
    return {
        "jobs_per_second": round(throughput, 1),
        "start_p50_ms": round(percentile(delays, 50) * 1000, 2),
        "start_p99_ms": round(percentile(delays, 99) * 1000, 2),
        "start_mean_ms": round(statistics.fmean(delays) * 1000, 2),
        "jobs": jobs,
        "latency_jobs": latency_jobs,
    }


def config(poll: float) -> QueueConfig:
    return QueueConfig(
        concurrency=CONCURRENCY,
        poll_interval=poll,
        heartbeat_interval=5.0,
        job_timeout=30,
        visibility_timeout=60,
    )


async def run_kervan(
    queue: JobQueue, db: Database, jobs: int, latency_jobs: int, poll: float, *, wake: bool = True
) -> dict[str, float]:
    probe = Probe()

    async def noop(job: Job) -> None:
        probe.started(job.payload["t"])
        probe.completed()

    handlers = HandlerRegistry()
    handlers.register(QUEUE, noop)
    run = uuid.uuid4().hex[:8]
    if not wake and isinstance(queue, SqlOutbox):
        queue.wake = lambda: None  # type: ignore[method-assign]  # a producer in another process

    async def enqueue(i: int, t: float) -> None:
        await queue.enqueue(QUEUE, {"t": t}, key=f"{run}:{i}")

    worker = Worker(
        queue,
        config(poll),
        SYSTEM_CLOCK,
        handlers=handlers,
        queues=[QUEUE],
        ledger=AttemptLedger(db, SYSTEM_CLOCK),
    )
    await worker.start()
    try:
        return await measure(enqueue, probe, jobs, latency_jobs)
    finally:
        await worker.stop()


async def run_saq(redis_url: str, jobs: int, latency_jobs: int) -> dict[str, float]:
    probe = Probe()

    async def noop(ctx: Any, *, t: float) -> None:
        probe.started(t)
        probe.completed()

    queue = SaqQueue.from_url(redis_url, name=f"bench-{uuid.uuid4().hex[:8]}")
    await queue.connect()
    worker = SaqWorker(queue, functions=[("noop", noop)], concurrency=CONCURRENCY)
    task = asyncio.create_task(worker.start())
    run = uuid.uuid4().hex[:8]

    async def enqueue(i: int, t: float) -> None:
        await queue.enqueue("noop", key=f"{run}:{i}", t=t)

    try:
        return await measure(enqueue, probe, jobs, latency_jobs)
    finally:
        await worker.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await queue.disconnect()


async def sqlite_db(tmp: Path) -> Database:
    db = Database(f"sqlite+aiosqlite:///{tmp / 'bench.db'}")
    await migrate(db)
    return db


async def mariadb_db(url: str) -> tuple[Database, Callable[[], None]]:
    base = make_url(url)
    name = f"kervan_bench_{uuid.uuid4().hex[:8]}"
    params = {
        "host": base.host or "127.0.0.1",
        "port": base.port or 3306,
        "user": base.username or "root",
        "password": base.password or "",
    }
    conn = pymysql.connect(**params)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    conn.close()
    db = Database(base.set(database=name).render_as_string(hide_password=False), pool_size=40)
    await migrate(db)

    def drop() -> None:
        c = pymysql.connect(**params)
        with c.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        c.close()

    return db, drop


async def cleanup_namespace(redis: Redis, namespace: str) -> None:
    keys = [k async for k in redis.scan_iter(match=f"{namespace}:*", count=1000)]
    for i in range(0, len(keys), 500):
        await redis.delete(*keys[i : i + 500])


async def main(args: argparse.Namespace) -> dict[str, Any]:
    logging.disable(logging.WARNING)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        # Redis: kervan vs saq, same server, same concurrency.
        namespace = f"bench-{uuid.uuid4().hex[:8]}"
        redis = create_redis_client(args.redis_url, max_connections=100, timeout=5.0)
        ledger_db = await sqlite_db(tmp)
        try:
            queue = RedisStreamsQueue(
                redis, lambda *p: ":".join((namespace, *p)), SYSTEM_CLOCK, config(args.poll)
            )
            results["kervan redis streams"] = await run_kervan(
                queue, ledger_db, args.jobs, args.latency_jobs, args.poll
            )
            results["saq redis"] = await run_saq(args.redis_url, args.jobs, args.latency_jobs)
        finally:
            await cleanup_namespace(redis, namespace)
            await cleanup_namespace(redis, "saq")
            await redis.aclose()
            await ledger_db.dispose()

        sql_jobs = args.sql_jobs
        db = await sqlite_db(Path(tempfile.mkdtemp(dir=tmp)))
        try:
            outbox = SqlOutbox(db, SYSTEM_CLOCK, config(args.poll))
            results["kervan sql outbox, sqlite (in-process wake)"] = await run_kervan(
                outbox, db, sql_jobs, args.latency_jobs, args.poll
            )
            outbox = SqlOutbox(db, SYSTEM_CLOCK, config(args.poll))
            results[f"kervan sql outbox, sqlite (poll {args.poll:g}s)"] = await run_kervan(
                outbox, db, sql_jobs, args.latency_jobs, args.poll, wake=False
            )
        finally:
            await db.dispose()

        db, drop = await mariadb_db(args.mariadb_url)
        try:
            outbox = SqlOutbox(db, SYSTEM_CLOCK, config(args.poll))
            results["kervan sql outbox, mariadb (in-process wake)"] = await run_kervan(
                outbox, db, sql_jobs, args.latency_jobs, args.poll
            )
            outbox = SqlOutbox(db, SYSTEM_CLOCK, config(args.poll))
            results[f"kervan sql outbox, mariadb (poll {args.poll:g}s)"] = await run_kervan(
                outbox, db, sql_jobs, args.latency_jobs, args.poll, wake=False
            )
        finally:
            await db.dispose()
            drop()

    ours, theirs = results["kervan redis streams"], results["saq redis"]
    ratio = ours["jobs_per_second"] / theirs["jobs_per_second"]
    return {
        "bench": "queue",
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "concurrency": CONCURRENCY,
        "producers": PRODUCERS,
        "latency_rate_per_second": LATENCY_RATE,
        "results": results,
        "goals": {
            "redis_throughput_vs_saq": round(ratio, 2),
            "redis_throughput_goal_2x_met": ratio >= 2.0,
            "redis_start_p99_ms": ours["start_p99_ms"],
            "redis_start_p99_goal_20ms_met": ours["start_p99_ms"] < 20.0,
        },
    }


def print_table(report: dict[str, Any]) -> None:
    header = f"{'backend':48} {'jobs/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'mean ms':>9}"
    print(header)
    print("-" * len(header))
    for name, r in report["results"].items():
        print(
            f"{name:48} {r['jobs_per_second']:>10.1f} {r['start_p50_ms']:>9.2f} "
            f"{r['start_p99_ms']:>9.2f} {r['start_mean_ms']:>9.2f}"
        )
    goals = report["goals"]
    print(
        f"\nRedis: kervan / saq throughput = {goals['redis_throughput_vs_saq']:.2f}x "
        f"(goal 2x: {'met' if goals['redis_throughput_goal_2x_met'] else 'NOT met'}); "
        f"p99 start {goals['redis_start_p99_ms']:.2f} ms "
        f"(goal < 20 ms: {'met' if goals['redis_start_p99_goal_20ms_met'] else 'NOT met'})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--mariadb-url", default="mariadb+aiomysql://root@127.0.0.1:3306/test")
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--sql-jobs", type=int, default=2000)
    parser.add_argument("--latency-jobs", type=int, default=500)
    parser.add_argument("--poll", type=float, default=0.05)
    args = parser.parse_args()
    report = asyncio.run(main(args))
    print_table(report)
    out = ROOT / "bench" / "results" / "queue.json"
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(f"\nwrote {out.relative_to(ROOT)}")
