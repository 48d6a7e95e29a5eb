"""Tracked page views feed the speculation feature's flows, so one script serves both.

Each server-side session's page views are paired with its previous one (the flows' session
state in the state backend, ``service.speculation.sessions``) into transitions of the site's
segment: the site config's ``speculation_segment``, one of the segments this deployment serves
(``KERVAN_SPECULATION_SEGMENTS``). The flows are the deployment's, not a site's, so a site feeds
them only when it names its segment; without one (or with one not served, which no rules answer
could ever read) its page views feed nothing. The counts are summed in
memory and written to the edge store (``service.speculation.store.add_transitions``, what
``POST /flows/events`` uses) once per ``interval``: one transaction per flush instead of one per
batch, since every writer of a segment takes that segment's row lock. A flush that fails is
kept for the next one; a crash loses at most one interval of counts, which the statistics of a
navigation graph can afford.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Sequence
from functools import lru_cache

from core.errors import ValidationFailed
from core.flows.events import PageView, pair_page_views
from core.flows.paths import normalize_path
from core.flows.segments import MAX_SEGMENT_LENGTH
from service.backends import Backends
from service.db import Database
from service.db.types import utcnow
from service.logging import get_logger
from service.periodic import Periodic
from service.speculation import sessions as flow_sessions
from service.speculation import store
from service.tracking.ingest_metrics import FLOW_TRANSITIONS
from service.tracking.sites import Site

log = get_logger("kervan.tracking.flows")

DEFAULT_INTERVAL_SECONDS = 1.0
#: Distinct transitions held when flushes keep failing (beyond it the oldest are dropped).
MAX_PENDING = 100_000
#: A segment fits the flows' ``seg`` column; the feed writes no other.
_SEGMENT = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@lru_cache(maxsize=8192)
def _flow_path(path: str) -> str | None:
    """The flows' spelling of a page path (``None``: one they cannot hold); cached, since a
    site's page views keep naming the same pages."""
    try:
        return normalize_path(path)
    except ValidationFailed:
        return None


def site_segment(site: Site, served: Collection[str]) -> str | None:
    """The flows segment a site's page views feed, or ``None``: none configured, or one that is
    not among the ``served`` segments (its counts could never become a rules answer)."""
    seg = site.config.get("speculation_segment")
    if not isinstance(seg, str) or seg not in served:
        return None
    if len(seg) > MAX_SEGMENT_LENGTH or not _SEGMENT.match(seg):
        return None
    return seg


class FlowFeed(Periodic):
    name = "tracking-flow-feed"

    def __init__(
        self,
        db: Database,
        backends: Backends,
        session_ttl_seconds: float,
        interval: float = DEFAULT_INTERVAL_SECONDS,
    ) -> None:
        super().__init__(interval)
        self._db = db
        self._backends = backends
        self._ttl = session_ttl_seconds
        self._pending: Counter[tuple[str, str, str]] = Counter()

    async def add(self, seg: str | None, views: Sequence[tuple[str, float, str]]) -> None:
        """Count the transitions of ``(session key, ts, path)`` page views into ``seg``."""
        if not views:
            return
        if seg is None:
            FLOW_TRANSITIONS.labels("skipped").inc(len(views))
            return
        page_views = [
            PageView(key, seg, flow_path, ts)
            for key, ts, path in views
            if (flow_path := _flow_path(path)) is not None
        ]
        if not page_views:
            return
        last = await flow_sessions.last_views(self._backends, (v.session_id for v in page_views))
        navigations, changed = pair_page_views(page_views, last, self._ttl)
        for nav in navigations:
            if nav.from_path != nav.to_path:
                self._pending[(nav.seg, nav.from_path, nav.to_path)] += 1
        if changed:
            await flow_sessions.remember(self._backends, changed, self._ttl)

    async def step(self) -> None:
        await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        counts, self._pending = self._pending, Counter()
        try:
            await store.add_transitions(self._db, counts, utcnow())
        except Exception:
            # Kept for the next flush (the oldest dropped when it grows too large).
            counts.update(self._pending)
            while len(counts) > MAX_PENDING:
                counts.pop(next(iter(counts)))
            self._pending = counts
            raise
        FLOW_TRANSITIONS.labels("counted").inc(sum(counts.values()))

    def on_error(self, error: Exception) -> None:
        log.warning("flows feed flush failed: %s", error)

    async def stop(self) -> None:
        await super().stop()
        try:
            await self.flush()
        except Exception as error:
            dropped = sum(self._pending.values())
            FLOW_TRANSITIONS.labels("dropped").inc(dropped)
            log.warning("flows feed: %d transitions dropped at shutdown: %s", dropped, error)

    def pending(self) -> dict[tuple[str, str, str], int]:
        return dict(self._pending)


def views_of(session_key: str, views: Sequence[tuple[float, str]]) -> list[tuple[str, float, str]]:
    return [(session_key, ts, path) for ts, path in views]
