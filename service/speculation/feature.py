"""The speculation feature's setup: the per-segment rules cache and its refresher, the rules'
fast path, and the flows facility that feeds the edge store behind it."""

from __future__ import annotations

from service.fast_routes import FastRoute
from service.overload.monitor import OverloadMonitor
from service.runtime import Runtime
from service.speculation.cache import SpeculationCache
from service.speculation.flows import FlowsFacility
from service.speculation.serving import RULES_PATH, FastRules


async def setup(runtime: Runtime) -> None:
    cache = SpeculationCache(runtime.settings, runtime.db, runtime.backends, runtime.clock)
    cache.overload = runtime.facility(OverloadMonitor)
    runtime.provide(SpeculationCache, cache)
    runtime.add_component(cache)
    # Pages may ask for the rules on every view: held answers skip the router.
    rules = FastRules(cache)
    runtime.fast_routes[RULES_PATH] = FastRoute(RULES_PATH, rules, rules.held)
    runtime.provide(
        FlowsFacility,
        FlowsFacility(runtime.settings, runtime.db, runtime.backends, runtime.clock, cache),
    )
