"""The queue feature's setup: the job queue (``runtime.queue``) and, where one runs in this
process (the embedded default, or ``kervan worker``), the worker with its heartbeat."""

from __future__ import annotations

from service.heartbeat import WorkerHeartbeat, worker_readiness_check
from service.queue.config import QueueConfig
from service.queue.factory import build_queue
from service.queue.ledger import AttemptLedger
from service.queue.persistence import RedisPersistence, sql_details
from service.queue.redis_streams import RedisStreamsQueue
from service.queue.worker import QueueStatsPublisher, Worker
from service.runtime import Runtime


async def setup(runtime: Runtime) -> None:
    settings = runtime.settings
    config = QueueConfig.from_settings(settings)
    queue = build_queue(settings, runtime.db, runtime.backends, runtime.clock, config)
    runtime.queue = queue
    if isinstance(queue, RedisStreamsQueue) and runtime.backends.redis is not None:
        persistence = RedisPersistence(runtime.backends.redis)
        runtime.add_component(persistence)
        runtime.add_readiness_info("queue_persistence", persistence.details)
    else:
        runtime.add_readiness_info("queue_persistence", sql_details)
    if not runtime.runs_worker:
        runtime.add_component(
            QueueStatsPublisher(queue, runtime.handlers, config.heartbeat_interval)
        )
        return
    worker = Worker(
        queue,
        config,
        runtime.clock,
        handlers=runtime.handlers,
        queues=runtime.worker_queues,
        ledger=AttemptLedger(runtime.db, runtime.clock),
        limiter_source=lambda: runtime.ratelimiter,
    )
    runtime.worker = worker
    runtime.add_component(worker)
    runtime.add_component(
        WorkerHeartbeat(
            runtime.backends,
            runtime.clock,
            ident=worker.worker_id,
            interval=config.heartbeat_interval,
        )
    )

    async def breaker_states() -> dict[str, str]:
        return worker.breakers.publish()

    # Shown, not decisive: a provider outage must not take the API out of service.
    runtime.add_readiness_info("circuit_breakers", breaker_states)
    # Only where a worker runs: API pods of the scaled mode stay ready while the separate
    # worker deployment scales (to zero, even) on the backlog.
    runtime.add_readiness_check(
        "worker",
        worker_readiness_check(
            runtime.backends, runtime.clock, settings.worker_heartbeat_max_age_seconds
        ),
    )
