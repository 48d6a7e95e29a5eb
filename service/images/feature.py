"""The images feature's setup: the facility (originals, variants, tiles) and its cache janitor."""

from __future__ import annotations

from service.images.facility import ImagesFacility
from service.runtime import Runtime


async def setup(runtime: Runtime) -> None:
    ImagesFacility.harden_libvips()
    facility = runtime.provide(ImagesFacility, ImagesFacility(runtime.settings, runtime.db))
    if facility.janitor is not None:
        runtime.add_component(facility.janitor)
