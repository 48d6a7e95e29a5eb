"""The cache-aside facility of this runtime, on the process's state backend and its clock."""

from __future__ import annotations

from service.cache.aside import CacheAside
from service.runtime import Runtime


async def setup(runtime: Runtime) -> None:
    runtime.provide(CacheAside, CacheAside(runtime.backends, clock=runtime.clock.now))
