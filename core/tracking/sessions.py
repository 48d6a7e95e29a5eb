"""Server-side sessions: which session each event of a batch belongs to.

Events are taken in time order. An event continues the visitor's current session unless it
comes more than the timeout after the session's last event (or that long before its start: a
late event from an offline queue), or it is a page view landing from a campaign other than
the session's (another ad click id, or other UTM source/medium/campaign). A new session takes
its attribution from its first page view when that one names a source, else from the script's
landing page (sent with every batch, so that later pages keep the landing's attribution), and
is ``returning`` when the visitor had a session before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from core.tracking.attribution import Attribution, attribute
from core.tracking.events import Event
from core.tracking.score import Signals, is_contact_path

#: Mediums that mean a paid click even without a click id.
PAID_MEDIUMS = frozenset({"cpc", "ppc", "paid", "paidsearch", "paid_search", "paid-search"})


@dataclass(slots=True, eq=False)
class SessionDraft:
    """A session as this batch leaves it: a stored one (updated) or a new one (inserted)."""

    id: int | None
    started_at: float
    last_seen_at: float
    page_views: int
    events: int
    attribution: Attribution
    landing_path: str | None
    returning: bool
    stored: bool
    #: What this batch adds (the update of a stored session).
    added_page_views: int = 0
    added_events: int = 0
    #: Accepted page views of this batch in time order: ``(ts, path)`` (the flows feed).
    views: list[tuple[float, str]] = field(default_factory=list)

    @property
    def ads_click(self) -> bool:
        return self.attribution.click is not None or self.attribution.medium in PAID_MEDIUMS


@dataclass(frozen=True, slots=True)
class Placed:
    event: Event
    session: SessionDraft
    #: Intents: the session's signals at the click (its lead score).
    signals: Signals | None = None


def _changes_campaign(session: Attribution, landing: Attribution) -> bool:
    if not landing.tagged:
        return False
    if landing.click is not None:
        current = session.click
        return current is None or (current.kind, current.value) != (
            landing.click.kind,
            landing.click.value,
        )
    return landing.campaign_key != session.campaign_key


def place_events(
    events: Sequence[Event],
    latest: SessionDraft | None,
    *,
    timeout_seconds: float,
    hosts: frozenset[str],
    fallback: Attribution,
) -> list[Placed]:
    """Each event with its session; ``latest`` is the visitor's stored latest session."""
    placed: list[Placed] = []
    current = latest
    had_session = latest is not None
    for event in sorted(events, key=lambda e: (e.ts, e.index)):
        landing = attribute(event.url, event.referrer, hosts) if event.type == "page_view" else None
        if (
            current is None
            or event.ts - current.last_seen_at > timeout_seconds
            or current.started_at - event.ts > timeout_seconds
            or (landing is not None and _changes_campaign(current.attribution, landing))
        ):
            own = landing if landing is not None and not landing.is_direct else None
            current = SessionDraft(
                id=None,
                started_at=event.ts,
                last_seen_at=event.ts,
                page_views=0,
                events=0,
                attribution=own or fallback,
                landing_path=event.path,
                returning=had_session,
                stored=False,
            )
            had_session = True
        session = current
        session.events += 1
        session.added_events += 1
        session.last_seen_at = max(session.last_seen_at, event.ts)
        if event.type == "page_view":
            session.page_views += 1
            session.added_page_views += 1
            session.views.append((event.ts, event.path))
        signals = None
        if event.type == "intent":
            signals = Signals(
                page_views=session.page_views,
                seconds_on_site=max(0.0, event.ts - session.started_at),
                ads_click=session.ads_click,
                returning=session.returning,
                contact_page=is_contact_path(session.landing_path) or is_contact_path(event.path),
            )
        placed.append(Placed(event, session, signals))
    return placed
