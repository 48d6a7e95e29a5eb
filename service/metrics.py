"""The Prometheus registry every kervan metric is registered on, and the HTTP metrics."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import accumulate

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from native.edgepath import HTTP_LATENCY_BUCKETS, observe

# The *_created series double the exposition size and no dashboard of ours reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=True)


class HttpStats(Collector):
    """The HTTP request metrics, counted in plain integers on the request path and turned into
    metric families only when ``/metrics`` is scraped.

    prometheus_client's labelled children take a lock and validate on every increment; the edge
    runs on one event loop thread per process, so plain counters suffice there, at a fraction of
    the cost per request.
    """

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}
        #: Per (method, route): a count per bucket (not cumulative) plus the +Inf one, and sum.
        self.latency: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
        self.in_flight = 0

    def observe(self, method: str, route: str, status: int, elapsed: float) -> None:
        """One answered request (compiled: ``native/_edgepath.pyx``, whose bounds are
        ``HTTP_LATENCY_BUCKETS``; the RSGI front counts into the same dicts)."""
        observe(self.requests, self.latency, method, route, status, elapsed)

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "kervan_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            labels=["method", "route", "status"],
        )
        for (method, route, status), count in list(self.requests.items()):
            requests.add_metric([method, route, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(
            "kervan_http_request_duration_seconds",
            "Time from receiving a request to sending the end of its response.",
            labels=["method", "route"],
        )
        bounds = [*(repr(b) for b in HTTP_LATENCY_BUCKETS), "+Inf"]
        for (method, route), (counts, total) in list(self.latency.items()):
            cumulative = list(accumulate(counts))
            latency.add_metric(
                [method, route], list(zip(bounds, cumulative, strict=True)), total[0]
            )
        yield latency
        yield GaugeMetricFamily(
            "kervan_http_requests_in_flight", "Requests being processed right now.", self.in_flight
        )


HTTP = HttpStats()
REGISTRY.register(HTTP)
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
