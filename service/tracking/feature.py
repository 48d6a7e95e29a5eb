"""The tracking feature's setup: the ingest of site scripts' batches (``TrackingIngest``), the
site cache it reads through, and the feed of tracked page views into the speculation flows.

Other parts of lead tracking add their blocks below, each in its own clearly marked section.
"""

from __future__ import annotations

from service.runtime import Runtime
from service.tracking import people_feature
from service.tracking.flowfeed import FlowFeed
from service.tracking.ingest import TrackingIngest
from service.tracking.maintenance import add_maintenance
from service.tracking.quota_warning import QuotaWarner
from service.tracking.sitecache import SiteCache
from service.tracking.writer import BatchWriter


async def setup(runtime: Runtime) -> None:
    settings = runtime.settings
    # --- ingest (POST /t/sync) -------------------------------------------------------------
    sites = SiteCache(runtime.db, runtime.clock)
    feed = FlowFeed(runtime.db, runtime.backends, settings.speculation_session_ttl_seconds)
    runtime.add_component(feed)
    writer = BatchWriter(runtime.db)
    runtime.add_component(writer)
    # The queue is set up after this feature: the warner asks for it when it sends.
    warner = QuotaWarner(settings, lambda: runtime.queue)
    ingest = TrackingIngest(settings, runtime.db, runtime.clock, sites, feed, writer, warner)
    runtime.provide(TrackingIngest, ingest)
    # --- dashboard helper: maintenance (partitions ahead, rollups, retention, expiry) -----
    add_maintenance(runtime)
    # --- people helper: people's login (PersonAuth) and the e-mail queue's handler ---------
    await people_feature.setup(runtime)
