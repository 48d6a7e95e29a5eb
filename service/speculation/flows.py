"""The flows facility: ingestion of navigation events and page views, edge imports and listing.

What ``/flows/*`` does behind the HTTP mapping. Ingestion pairs each session's page views with
its previous one (kept in the state backend), counts the transitions into the edge store, and
remembers the sessions' new last pages only once the counts are stored.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from core.clock import Clock
from core.errors import ValidationFailed
from core.flows.events import MAX_BATCH, PageView, pair_page_views, parse_batch
from core.flows.segments import validate_segment
from service.backends import Backends
from service.db import Database
from service.db.types import utcnow
from service.settings import Settings
from service.speculation import sessions, store
from service.speculation.bodies import array_member
from service.speculation.cache import SpeculationCache
from service.speculation.imports import IMPORT_BODY_BYTES, EdgeImport, parse_import
from service.speculation.metrics import FLOW_EVENTS

#: A page cursor names one edge: both halves or neither.
CURSOR_RULE = "after_from and after_to go together"


@dataclass(frozen=True, slots=True)
class Ingested:
    accepted: int
    transitions: int
    #: Navigations within one page (a reload once normalized): accepted, not counted.
    ignored: int


@dataclass(frozen=True, slots=True)
class EdgePage:
    seg: str
    edges: list[store.EdgeRow]
    #: Where the next page starts, when this one is full: ``(after_from, after_to)``.
    next_after: tuple[str, str] | None


class FlowsFacility:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        backends: Backends,
        clock: Clock,
        cache: SpeculationCache,
    ) -> None:
        self.settings = settings
        self.db = db
        self.backends = backends
        self.clock = clock
        self.cache = cache
        self.origins = frozenset({settings.public_origin, *settings.allowed_origins})
        self.import_body_limit = max(settings.max_body_bytes, IMPORT_BODY_BYTES)

    async def ingest(self, body: Any) -> Ingested:
        """Count a batch (``{"events": [...]}``), all or nothing."""
        items = array_member(body, "events", MAX_BATCH)
        segments = self.settings.speculation_segments
        ttl = self.settings.speculation_session_ttl_seconds
        batch = parse_batch(items, segments, self.origins, self.clock.now())
        navigations = list(batch.navigations)
        changed: dict[str, PageView] = {}
        if batch.page_views:
            ids = (v.session_id for v in batch.page_views)
            last = await sessions.last_views(self.backends, ids)
            paired, changed = pair_page_views(batch.page_views, last, ttl)
            navigations += paired
        counts: Counter[tuple[str, str, str]] = Counter(
            (n.seg, n.from_path, n.to_path) for n in navigations if n.from_path != n.to_path
        )
        await store.add_transitions(self.db, counts, utcnow())
        if changed:
            # After the edges are stored: a failed write leaves the sessions as they were.
            await sessions.remember(self.backends, changed, ttl)
        ignored = sum(1 for n in batch.navigations if n.from_path == n.to_path)
        FLOW_EVENTS.labels("navigation", "counted").inc(len(batch.navigations) - ignored)
        FLOW_EVENTS.labels("navigation", "ignored").inc(ignored)
        FLOW_EVENTS.labels("page_view", "counted").inc(len(batch.page_views))
        return Ingested(len(items), sum(counts.values()), ignored)

    async def import_edges(self, body: Any) -> EdgeImport:
        """Load an import (see ``service.speculation.imports``) and refresh its segment now."""
        parsed = parse_import(body, self.settings.speculation_segments, self.origins)
        await store.load_edges(
            self.db, parsed.seg, parsed.edges, replace=parsed.replace, now=utcnow()
        )
        # An import is a deliberate change: serve it without waiting for the next refresh round.
        self.cache.refresh_soon(parsed.seg)
        return parsed

    async def list_edges(
        self, seg: str, *, limit: int, after_from: str | None, after_to: str | None
    ) -> EdgePage:
        """One page of a segment's edges in (from, to) order, after the cursor if given."""
        seg = validate_segment(seg, self.settings.speculation_segments)
        if (after_from is None) != (after_to is None):
            raise ValidationFailed(CURSOR_RULE)
        after = (after_from, after_to) if after_from is not None and after_to is not None else None
        rows = await store.list_edges(self.db, seg, limit=limit, after=after)
        full = len(rows) == limit
        return EdgePage(seg, rows, (rows[-1].from_path, rows[-1].to_path) if full else None)
