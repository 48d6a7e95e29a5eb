"""The speculation feature's setup: the per-segment rules cache and its refresher."""

from __future__ import annotations

from service.runtime import Runtime
from service.speculation.cache import SpeculationCache


async def setup(runtime: Runtime) -> None:
    cache = SpeculationCache(runtime.settings, runtime.db, runtime.backends, runtime.clock)
    runtime.provide(SpeculationCache, cache)
    runtime.add_component(cache)
