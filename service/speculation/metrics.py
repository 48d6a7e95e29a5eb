"""Speculation metrics: simulation time, cache age, rules served, events ingested."""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Protocol

from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from service.metrics import REGISTRY

SIMULATION_SECONDS = Histogram(
    "kervan_speculation_simulation_seconds",
    "Time to load a segment's edges and rank its routes (walk or exact solver).",
    ["mode"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)


class RulesServed(Collector):
    """Rules answers per segment and status, and the rules they carried, counted in plain
    integers on the request path (the hottest one: see ``service/metrics.HttpStats``) and
    turned into counter families when ``/metrics`` is scraped."""

    def __init__(self) -> None:
        #: seg -> [200 answers, 304 answers, prerender routes sent, prefetch routes sent]
        self.counts: dict[str, list[int]] = {}

    def of(self, seg: str) -> list[int]:
        """``seg``'s counts, to increment in place."""
        found = self.counts.get(seg)
        if found is None:
            found = self.counts[seg] = [0, 0, 0, 0]
        return found

    def served(self, seg: str, prerender: int, prefetch: int) -> None:
        counts = self.of(seg)
        counts[0] += 1
        counts[2] += prerender
        counts[3] += prefetch

    def not_modified(self, seg: str) -> None:
        self.of(seg)[1] += 1

    def collect(self) -> Iterable[CounterMetricFamily]:
        responses = CounterMetricFamily(
            "kervan_speculation_responses",
            "Speculation rules responses per segment and status (200 with rules, 304 not "
            "modified).",
            labels=["seg", "status"],
        )
        rules = CounterMetricFamily(
            "kervan_speculation_rules_served",
            "Routes speculated on in 200 responses (URL patterns in the rules sent), per "
            "segment and action (prerender, prefetch).",
            labels=["seg", "action"],
        )
        for seg, (ok, not_modified, prerender, prefetch) in list(self.counts.items()):
            responses.add_metric([seg, "200"], ok)
            responses.add_metric([seg, "304"], not_modified)
            rules.add_metric([seg, "prerender"], prerender)
            rules.add_metric([seg, "prefetch"], prefetch)
        yield responses
        yield rules


RULES = RulesServed()
REGISTRY.register(RULES)
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
