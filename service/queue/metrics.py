"""Prometheus metrics of the job queue and its workers."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from service.metrics import REGISTRY

ENQUEUED = Counter(
    "kervan_queue_jobs_enqueued_total",
    "Jobs accepted by the queue (duplicates of a known key not counted).",
    ["queue"],
    registry=REGISTRY,
)
OUTCOMES = Counter(
    "kervan_queue_job_attempts_total",
    "Finished job attempts by outcome: succeeded, failed, timed_out, deferred, permanent, "
    "released, expired.",
    ["queue", "outcome"],
    registry=REGISTRY,
)
SUCCEEDED = Counter("kervan_queue_jobs_succeeded_total", "Jobs done.", ["queue"], registry=REGISTRY)
FAILED = Counter(
    "kervan_queue_jobs_failed_total",
    "Attempts that failed (error, timeout or permanent failure).",
    ["queue"],
    registry=REGISTRY,
)
RETRIED = Counter(
    "kervan_queue_jobs_retried_total",
    "Jobs scheduled again: after a failure (with backoff) or deferred without using an attempt.",
    ["queue", "kind"],
    registry=REGISTRY,
)
DEAD_LETTERED = Counter(
    "kervan_queue_jobs_dead_lettered_total",
    "Jobs moved to the dead letters.",
    ["queue"],
    registry=REGISTRY,
)
DURATION = Histogram(
    "kervan_queue_job_duration_seconds",
    "Time a handler took for one attempt.",
    ["queue"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
START_DELAY = Histogram(
    "kervan_queue_start_delay_seconds",
    "Time from enqueue to the start of a job's first attempt.",
    ["queue"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0),
    registry=REGISTRY,
)
BACKLOG = Gauge(
    "kervan_queue_backlog_jobs",
    "Jobs ready to run and waiting for a worker (the signal to scale workers on).",
    ["queue"],
    registry=REGISTRY,
)
DELAYED = Gauge(
    "kervan_queue_delayed_jobs", "Jobs scheduled for later.", ["queue"], registry=REGISTRY
)
RUNNING = Gauge(
    "kervan_queue_running_jobs", "Jobs leased by a worker.", ["queue"], registry=REGISTRY
)
DEAD = Gauge("kervan_queue_dead_jobs", "Dead letters kept.", ["queue"], registry=REGISTRY)
OLDEST_AGE = Gauge(
    "kervan_queue_oldest_job_age_seconds",
    "How long the oldest ready job has waited.",
    ["queue"],
    registry=REGISTRY,
)
BREAKER_STATE = Gauge(
    "kervan_queue_breaker_state",
    "Circuit breaker per provider: 0 closed, 1 half-open, 2 open.",
    ["provider"],
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(
    "kervan_queue_worker_in_flight_jobs", "Jobs this process is running now.", registry=REGISTRY
)
LEASE_LOST = Counter(
    "kervan_queue_lease_lost_total",
    "Outcomes discarded because another worker had taken the job over (lease expired).",
    ["queue"],
    registry=REGISTRY,
)
