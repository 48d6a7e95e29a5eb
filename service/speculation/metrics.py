"""Speculation metrics: simulation time, cache age, rules served, events ingested."""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Protocol

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from service.metrics import REGISTRY

SIMULATION_SECONDS = Histogram(
    "kervan_speculation_simulation_seconds",
    "Time to load a segment's edges and rank its routes (walk or exact solver).",
    ["mode"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
RESPONSES = Counter(
    "kervan_speculation_responses_total",
    "Speculation rules responses per segment and status (200 with rules, 304 not modified).",
    ["seg", "status"],
    registry=REGISTRY,
)
RULES_SERVED = Counter(
    "kervan_speculation_rules_served_total",
    "Rules sent in 200 responses, per segment and action (prerender, prefetch).",
    ["seg", "action"],
    registry=REGISTRY,
)
REFRESHES = Counter(
    "kervan_speculation_refreshes_total",
    "Cache refreshes per outcome: computed, unchanged (same data version), adopted (another "
    "instance's answer), busy (another instance holds the lock), failed.",
    ["outcome"],
    registry=REGISTRY,
)
FLOW_EVENTS = Counter(
    "kervan_flow_events_total",
    "Ingested flow events per kind (navigation, page_view) and outcome (counted, ignored).",
    ["kind", "outcome"],
    registry=REGISTRY,
)


class AgeSource(Protocol):
    def cache_ages(self) -> Iterable[tuple[str, str, float]]:
        """``(seg, mode, seconds since computed)`` per cached answer."""
        ...


class _CacheAgeCollector(Collector):
    """Reports the age at scrape time, so a stalled refresher shows as a growing value."""

    def __init__(self) -> None:
        self.sources: weakref.WeakSet[AgeSource] = weakref.WeakSet()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "kervan_speculation_cache_age_seconds",
            "Seconds since the cached rules of a segment were last computed or confirmed.",
            labels=["seg", "mode"],
        )
        for source in list(self.sources):
            for seg, mode, age in source.cache_ages():
                family.add_metric([seg, mode], age)
        yield family


CACHE_AGE = _CacheAgeCollector()
REGISTRY.register(CACHE_AGE)
