"""The ads feature's setup: the owners' facility, the upload job's handler with its per-customer
circuit breakers, and the seal hook's way to this runtime's queue.

Set up before the queue feature (``service/features.py``), so its handler is registered before
the worker starts and its HTTP client closes after the worker stopped.
"""

from __future__ import annotations

from typing import Any

from core.jobs import BreakerConfig
from service.ads import sealing
from service.ads.crypto import TokenCipher
from service.ads.facility import AdsFacility
from service.ads.flush import UPLOAD_QUEUE
from service.ads.google import GoogleAds
from service.ads.uploader import MAX_BATCHES_PER_RUN, Uploader
from service.queue.breakers import BreakerBoard
from service.runtime import Runtime

#: Beyond the requests' timeouts: database work of a batch of 2,000.
BATCH_OVERHEAD_SECONDS = 10.0
#: A batch's lease outlives its job's time limit by this much.
LEASE_MARGIN_SECONDS = 5.0


class _Client:
    def __init__(self, google: GoogleAds) -> None:
        self.google = google

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        await self.google.aclose()


async def setup(runtime: Runtime) -> None:
    settings = runtime.settings
    key = settings.ads_token_key
    cipher = TokenCipher(key.get_secret_value()) if key is not None else None
    google = GoogleAds(settings)
    runtime.add_component(_Client(google))
    breakers = BreakerBoard(
        BreakerConfig(
            window_seconds=settings.ads_breaker_window_seconds,
            min_calls=settings.ads_breaker_min_calls,
            failure_ratio=settings.ads_breaker_failure_ratio,
            open_seconds=settings.ads_breaker_open_seconds,
        ),
        runtime.clock,
    )
    # A run refreshes a token and uploads a few batches, and never outlives its lease in the
    # queue (the worker caps a job at 90 % of the visibility timeout).
    timeout = min(
        (MAX_BATCHES_PER_RUN + 1) * settings.ads_request_timeout_seconds
        + MAX_BATCHES_PER_RUN * BATCH_OVERHEAD_SECONDS,
        settings.queue_visibility_timeout_seconds * 0.9,
    )
    uploader = Uploader(
        settings=settings,
        db=runtime.db,
        clock=runtime.clock,
        cipher=cipher,
        google=google,
        breakers=breakers,
        lease_seconds=timeout + LEASE_MARGIN_SECONDS,
    )
    facility = AdsFacility(settings, runtime.db, runtime.clock, cipher, lambda: runtime.queue)
    runtime.provide(AdsFacility, facility)
    runtime.provide(Uploader, uploader)
    runtime.handlers.register(
        UPLOAD_QUEUE, uploader.handle, on_dead=facility.on_dead, timeout=timeout
    )
    sealing.install(runtime.db.engine.sync_engine, lambda: runtime.queue)

    async def breaker_states() -> dict[str, Any]:
        return breakers.publish()

    runtime.add_readiness_info("ads_breakers", breaker_states)
