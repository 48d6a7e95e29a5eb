"""The speculation feature's setup: the per-segment rules cache and its refresher, and the flows
facility that feeds the edge store behind it."""

from __future__ import annotations

from service.runtime import Runtime
from service.speculation.cache import SpeculationCache
from service.speculation.flows import FlowsFacility


async def setup(runtime: Runtime) -> None:
    cache = SpeculationCache(runtime.settings, runtime.db, runtime.backends, runtime.clock)
    runtime.provide(SpeculationCache, cache)
    runtime.add_component(cache)
    runtime.provide(
        FlowsFacility,
        FlowsFacility(runtime.settings, runtime.db, runtime.backends, runtime.clock, cache),
    )
