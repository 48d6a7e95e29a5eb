"""Prometheus metrics of rate limiting and lockouts.

The per-check counters are plain integers on each limiter, read by a collector at scrape time:
a Prometheus ``Counter.inc()`` takes a lock and would cost more than the check itself.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator

from prometheus_client import Counter, Gauge
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from native.limiter import Counters
from service.metrics import REGISTRY


class PolicyStats(Counters):
    """Counts of one policy in one limiter (``checks``, ``refused``, ``shadow_refused`` and
    ``failures`` are C integers the compiled in-process check increments itself)."""

    __slots__ = ("failure_mode", "last_shadow_log")

    def __init__(self, failure_mode: str) -> None:
        self.failure_mode = failure_mode
        self.last_shadow_log = float("-inf")


class _LimiterCollector(Collector):
    def __init__(self) -> None:
        self._sources: weakref.WeakSet[StatsSource] = weakref.WeakSet()

    def add(self, source: StatsSource) -> None:
        self._sources.add(source)

    def collect(self) -> Iterator[CounterMetricFamily]:
        checks = CounterMetricFamily(
            "kervan_ratelimit_checks", "Rate-limit checks, by policy.", labels=["policy"]
        )
        refusals = CounterMetricFamily(
            "kervan_ratelimit_refusals",
            "Checks the policy refused, by policy and mode (enforced, or shadow: counted only).",
            labels=["policy", "mode"],
        )
        failures = CounterMetricFamily(
            "kervan_ratelimit_backend_errors",
            "Checks answered by the failure mode because the backend failed.",
            labels=["policy", "failure_mode"],
        )
        totals: dict[str, list[int]] = {}
        modes: dict[str, str] = {}
        for source in list(self._sources):
            for name, stats in source.stats.items():
                total = totals.setdefault(name, [0, 0, 0, 0])
                total[0] += stats.checks
                total[1] += stats.refused
                total[2] += stats.shadow_refused
                total[3] += stats.failures
                modes[name] = stats.failure_mode
        for name, (n_checks, n_refused, n_shadow, n_failures) in sorted(totals.items()):
            checks.add_metric([name], n_checks)
            refusals.add_metric([name, "enforced"], n_refused)
            refusals.add_metric([name, "shadow"], n_shadow)
            failures.add_metric([name, modes[name]], n_failures)
        yield checks
        yield refusals
        yield failures


class StatsSource:
    """Anything holding ``stats``: policy name -> ``PolicyStats`` (the limiters)."""

    stats: dict[str, PolicyStats]


COLLECTOR = _LimiterCollector()
REGISTRY.register(COLLECTOR)

LOCKS = Counter(
    "kervan_lockouts_total",
    "Keys locked after too many failures, by lockout rule.",
    ["rule"],
    registry=REGISTRY,
)
LOCKS_ACTIVE = Gauge(
    "kervan_lockouts_active",
    "Locks in force at the last refresh (all processes, read from the backend).",
    registry=REGISTRY,
)
