"""Worker paths beyond the provider: pacing, expired final leases, missing handlers, relay."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from core.jobs import Job, PermanentFailure
from service.backends import memory_backends
from service.db.tables.jobs import queue_attempts
from service.metrics import REGISTRY
from service.queue.handlers import HandlerRegistry
from service.queue.ledger import AttemptLedger
from service.queue.redis_streams import RedisStreamsQueue
from service.queue.worker import Worker
from service.ratelimit.factory import build_rate_limiter
from service.runtime import Runtime
from service.settings import Settings
from tests.queue.conftest import TEST_CONFIG, QueueUnderTest
from tests.queue.test_worker_telegram import until

Q = "paths"


class Calls:
    def __init__(self) -> None:
        self.keys: list[str] = []

    async def __call__(self, job: Job) -> None:
        self.keys.append(job.key)


@pytest.fixture
async def calls() -> AsyncIterator[Calls]:
    yield Calls()


@pytest.fixture
def handlers() -> HandlerRegistry:
    """Each test's own registry, as each runtime has its own."""
    return HandlerRegistry()


async def _outcomes(qut: QueueUnderTest, ledger: AttemptLedger, key: str) -> list[str]:
    await ledger.flush()
    async with qut.db.connect() as conn:
        rows = await conn.execute(
            select(queue_attempts.c.outcome, queue_attempts.c.error)
            .where(queue_attempts.c.job_key == key)
            .order_by(queue_attempts.c.id)
        )
        return [f"{o}:{e or ''}" for o, e in rows.all()]


async def _run(worker: Worker) -> Worker:
    await worker.start()
    return worker


@pytest.mark.parametrize("qut", ["sqlite"], indirect=True)
async def test_pacing_through_the_rate_limit_facility_defers_without_running(
    qut: QueueUnderTest, calls: Calls, handlers: HandlerRegistry
) -> None:
    async def audit(actor: str, action: str, subject: str, details: dict[str, Any]) -> None:
        return None

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    limiter = build_rate_limiter(settings, memory_backends("pace"), qut.clock, audit)
    handlers.register_pacing_policy("test.pace", "1/hour burst 1")
    handlers.register(Q, calls, pacing=lambda job: [("test.pace", job.payload["chat"])])
    ledger = AttemptLedger(qut.db, qut.clock)
    worker = await _run(
        Worker(
            qut.queue,
            TEST_CONFIG,
            qut.clock,
            handlers=handlers,
            queues=[Q],
            ledger=ledger,
            limiter_source=lambda: limiter,
        )
    )
    try:
        await qut.queue.enqueue(Q, {"chat": "a"}, key="p1")
        await until(lambda: calls.keys == ["p1"])
        await qut.queue.enqueue(Q, {"chat": "a"}, key="p2")
        await qut.queue.enqueue(Q, {"chat": "b"}, key="p3")  # another chat has its own budget
        await until(lambda: "p3" in calls.keys)
        await until(lambda: _outcomes(qut, ledger, "p2"))
    finally:
        await worker.stop()
    assert calls.keys == ["p1", "p3"]
    assert await _outcomes(qut, ledger, "p2") == ["deferred:paced"]
    [stats] = await qut.queue.stats([Q])
    assert stats.delayed == 1  # p2 waits for its chat's budget, its attempt given back


async def test_final_attempt_whose_worker_died_is_dead_lettered(
    qut: QueueUnderTest, calls: Calls, handlers: HandlerRegistry
) -> None:
    handlers.register(Q, calls)
    await qut.queue.enqueue(Q, {}, key="ghost", max_attempts=1)
    [claimed] = await qut.queue.claim([Q], 1, worker_id="host:1:dead")  # never reports back
    assert claimed.attempt == 1
    await asyncio.sleep(TEST_CONFIG.visibility_timeout + 0.05)
    qut.clock.advance(2)
    ledger = AttemptLedger(qut.db, qut.clock)
    worker = await _run(
        Worker(qut.queue, TEST_CONFIG, qut.clock, handlers=handlers, queues=[Q], ledger=ledger)
    )
    try:
        await until(lambda: qut.queue.get_dead_letter("ghost"))
    finally:
        await worker.stop()
    assert calls.keys == []  # not run a second time beyond its budget
    letter = await qut.queue.get_dead_letter("ghost")
    assert letter is not None
    assert "lease ran out" in letter.last_error
    assert (await _outcomes(qut, ledger, "ghost"))[0].startswith("expired:")


async def test_queue_without_a_handler_waits_for_one(
    qut: QueueUnderTest, handlers: HandlerRegistry
) -> None:
    handlers.unregister("nobody")
    await qut.queue.enqueue("nobody", {}, key="orphan")
    ledger = AttemptLedger(qut.db, qut.clock)
    worker = await _run(
        Worker(
            qut.queue, TEST_CONFIG, qut.clock, handlers=handlers, queues=["nobody"], ledger=ledger
        )
    )
    try:
        await until(lambda: _outcomes(qut, ledger, "orphan"))
    finally:
        await worker.stop()
    [outcome] = await _outcomes(qut, ledger, "orphan")
    assert outcome.startswith("deferred:no handler")
    [stats] = await qut.queue.stats(["nobody"])
    assert (stats.delayed, stats.dead) == (1, 0)


@pytest.mark.parametrize("qut", ["redis"], indirect=True)
async def test_worker_relays_transactional_enqueues_onto_redis(
    qut: QueueUnderTest, calls: Calls, handlers: HandlerRegistry
) -> None:
    assert isinstance(qut.queue, RedisStreamsQueue)
    handlers.register(Q, calls)
    worker = await _run(Worker(qut.queue, TEST_CONFIG, qut.clock, handlers=handlers, queues=[Q]))
    try:
        async with qut.db.begin() as conn:
            assert await qut.queue.enqueue(Q, {"x": 1}, key="tx-relay", conn=conn)
        await until(lambda: calls.keys == ["tx-relay"])
    finally:
        await worker.stop()
    # The stopped worker's consumer name does not linger in the group.
    consumers = await qut.queue._r.xinfo_consumers(qut.queue._stream(Q), "workers")
    assert worker.worker_id not in [c["name"].decode() for c in consumers]


async def test_stop_releases_unfinished_jobs_without_consuming_the_attempt(
    qut: QueueUnderTest, handlers: HandlerRegistry
) -> None:
    started = asyncio.Event()

    async def endless(job: Job) -> None:
        started.set()
        await asyncio.Event().wait()

    handlers.register(Q, endless)
    ledger = AttemptLedger(qut.db, qut.clock)
    config = dataclasses.replace(TEST_CONFIG, shutdown_grace=0.05)
    worker = await _run(
        Worker(qut.queue, config, qut.clock, handlers=handlers, queues=[Q], ledger=ledger)
    )
    try:
        await qut.queue.enqueue(Q, {}, key="long")
        await asyncio.wait_for(started.wait(), 10)
    finally:
        await worker.stop()
        handlers.unregister(Q)
    assert await _outcomes(qut, ledger, "long") == ["released:worker shutting down"]
    jobs = await qut.queue.claim([Q], 1, worker_id="after")
    assert [(j.key, j.attempt) for j in jobs] == [("long", 1)]


async def test_per_job_timeout_overrides_the_queue_timeout(
    qut: QueueUnderTest, handlers: HandlerRegistry
) -> None:
    release = asyncio.Event()
    finished: list[str] = []

    async def handler(job: Job) -> None:
        await release.wait()
        finished.append(job.key)

    # A generous queue timeout; only the job that asks for less is cut short.
    config = dataclasses.replace(TEST_CONFIG, job_timeout=4.0, visibility_timeout=5.0)
    handlers.register(Q, handler, timeout=4.0)
    ledger = AttemptLedger(qut.db, qut.clock)
    worker = await _run(
        Worker(qut.queue, config, qut.clock, handlers=handlers, queues=[Q], ledger=ledger)
    )
    try:
        await qut.queue.enqueue(Q, {}, key="patient")
        await qut.queue.enqueue(Q, {}, key="hasty", timeout=0.05, max_attempts=1)
        await until(lambda: qut.queue.get_dead_letter("hasty"))
        release.set()  # "patient" has run at least as long as "hasty" was allowed
        await until(lambda: finished == ["patient"])
    finally:
        await worker.stop()
        handlers.unregister(Q)
    assert await _outcomes(qut, ledger, "hasty") == ["timed_out:timed out after 0.05s"]
    assert await _outcomes(qut, ledger, "patient") == ["succeeded:"]


async def test_runtime_shutdown_waits_for_the_workers_grace(
    qut: QueueUnderTest, handlers: HandlerRegistry
) -> None:
    started, finish = asyncio.Event(), asyncio.Event()
    done: list[str] = []

    async def slow(job: Job) -> None:
        started.set()
        await finish.wait()
        done.append(job.key)

    handlers.register(Q, slow)
    ledger = AttemptLedger(qut.db, qut.clock)
    config = dataclasses.replace(TEST_CONFIG, shutdown_grace=30.0)
    worker = Worker(qut.queue, config, qut.clock, handlers=handlers, queues=[Q], ledger=ledger)
    runtime = Runtime(
        settings=Settings(_env_file=None),  # type: ignore[call-arg]
        clock=qut.clock,
        db=qut.db,
        backends=memory_backends("grace"),
    )
    runtime.add_component(worker)
    await runtime.start()
    try:
        await qut.queue.enqueue(Q, {}, key="inflight")
        await asyncio.wait_for(started.wait(), 10)
        # The runtime's own limit is far shorter than the worker's grace period: the job
        # finishing inside the grace must still be recorded as done, not left leased.
        stopping = asyncio.create_task(runtime.stop(timeout=0.01))
        await asyncio.sleep(0.1)
        assert not stopping.done()  # still inside the worker's grace period
        finish.set()
        await asyncio.wait_for(stopping, 10)
    finally:
        finish.set()
        handlers.unregister(Q)
    assert done == ["inflight"]
    assert await _outcomes(qut, ledger, "inflight") == ["succeeded:"]
    assert worker.in_flight == 0


@pytest.mark.parametrize("qut", ["sqlite"], indirect=True)
async def test_runtime_gives_a_component_its_own_stop_timeout(qut: QueueUnderTest) -> None:
    stopped: list[str] = []

    class Slow:
        stop_timeout = 30.0

        async def start(self) -> None:
            return None

        async def stop(self) -> None:
            await asyncio.sleep(0.2)
            stopped.append("slow")

    runtime = Runtime(
        settings=Settings(_env_file=None),  # type: ignore[call-arg]
        clock=qut.clock,
        db=qut.db,
        backends=memory_backends("stop-timeout"),
    )
    runtime.add_component(Slow())
    await runtime.start()
    await runtime.stop(timeout=0.01)
    assert stopped == ["slow"]
    worker = Worker(
        qut.queue,
        dataclasses.replace(TEST_CONFIG, shutdown_grace=20.0),
        qut.clock,
        handlers=HandlerRegistry(),
    )
    assert worker.stop_timeout > 20.0


async def test_dead_letter_hook_survives_a_death_between_hook_and_dead_letter(
    qut: QueueUnderTest, handlers: HandlerRegistry
) -> None:
    alerts: list[str] = []
    dying = [True]

    async def refuse(job: Job) -> None:
        raise PermanentFailure("invalid recipient")

    async def on_dead(job: Job, error: str) -> None:
        if dying:
            dying.clear()
            # The worker process dies right here (the first time).
            raise asyncio.CancelledError
        alerts.append(f"{job.key}:{error}")

    handlers.register(Q, refuse, on_dead=on_dead)
    worker = await _run(Worker(qut.queue, TEST_CONFIG, qut.clock, handlers=handlers, queues=[Q]))
    try:
        await qut.queue.enqueue(Q, {}, key="doomed", max_attempts=1)
        # The job comes back once its lease runs out; the hook then runs to the end.
        await until(lambda: alerts, timeout=15)
        await until(lambda: qut.queue.get_dead_letter("doomed"))
    finally:
        await worker.stop()
        handlers.unregister(Q)
    [alert] = alerts
    assert alert.startswith("doomed:the lease ran out")


@pytest.mark.parametrize("qut", ["sqlite", "redis"], indirect=True)
async def test_outcome_metrics_per_queue(qut: QueueUnderTest, handlers: HandlerRegistry) -> None:
    queue = f"metered-{qut.kind}"
    runs: dict[str, int] = {}

    async def flaky(job: Job) -> None:
        runs[job.key] = runs.get(job.key, 0) + 1
        if job.key == "bad" or runs[job.key] <= 2:
            raise RuntimeError("provider hiccup")

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"queue": queue, **labels}) or 0.0

    handlers.register(queue, flaky)
    worker = await _run(
        Worker(qut.queue, TEST_CONFIG, qut.clock, handlers=handlers, queues=[queue])
    )
    try:
        await qut.queue.enqueue(queue, {}, key="good")  # fails twice, then succeeds
        await qut.queue.enqueue(queue, {}, key="bad", max_attempts=2)  # fails twice, dead
        await until(lambda: value("kervan_queue_jobs_succeeded_total") == 1)
        await until(lambda: value("kervan_queue_jobs_dead_lettered_total") == 1)
        await worker.publish_stats()
    finally:
        await worker.stop()
        handlers.unregister(queue)
    assert value("kervan_queue_jobs_enqueued_total") == 2
    assert value("kervan_queue_jobs_failed_total") == 4
    assert value("kervan_queue_jobs_retried_total", kind="retry") == 3
    assert value("kervan_queue_job_duration_seconds_count") == 5
    assert value("kervan_queue_start_delay_seconds_count") == 2
    assert value("kervan_queue_dead_jobs") == 1
    assert value("kervan_queue_backlog_jobs") == 0
