"""The Prometheus registry every kervan metric is registered on, and the HTTP metrics."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import generate_latest

# The *_created series double the exposition size and no dashboard of ours reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "kervan_http_requests_total",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "kervan_http_request_duration_seconds",
    "Time from receiving a request to sending the end of its response.",
    ["method", "route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
HTTP_IN_FLIGHT = Gauge(
    "kervan_http_requests_in_flight",
    "Requests being processed right now.",
    registry=REGISTRY,
)
BACKEND_ERRORS = Counter(
    "kervan_backend_errors_total",
    "Failures talking to a backend component (database, redis).",
    ["component"],
    registry=REGISTRY,
)
READY = Gauge(
    "kervan_component_ready",
    "1 when the component passed its last readiness check, 0 otherwise.",
    ["component"],
    registry=REGISTRY,
)


def render_metrics() -> bytes:
    return generate_latest(REGISTRY)
