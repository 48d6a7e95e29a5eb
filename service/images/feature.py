"""The images feature's setup: the facility (originals, variants, tiles), the original store's
connections and the cache janitor."""

from __future__ import annotations

from service.images.facility import ImagesFacility
from service.overload.monitor import OverloadMonitor
from service.runtime import Runtime


async def setup(runtime: Runtime) -> None:
    ImagesFacility.harden_libvips()
    facility = runtime.provide(
        ImagesFacility,
        ImagesFacility(runtime.settings, runtime.db, runtime.facility(OverloadMonitor)),
    )
    runtime.add_component(facility.originals)
    if facility.janitor is not None:
        runtime.add_component(facility.janitor)
