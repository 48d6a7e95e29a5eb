"""What each CSV export holds: its columns (in order), which consent each personal column needs,
and the keyset page query that reads it.

- ``intents``: a site's live intents (``deleted_at IS NULL``) created in the range, oldest first,
  each with its session's attribution. Keyset ``(created_at, id)`` over
  ``ix_track_intents_site_created``.
- ``sessions``: sessions started in the range. Keyset ``(started_at, id)`` over
  ``ix_track_sessions_site_started``.
- ``conversions``: Google Ads upload rows (``ads_uploads``) of live intents whose conversion
  (the sale) is in the range, by intent id. Keyset ``intent_id`` over the primary key
  ``(site_id, intent_id)``: there is no index on ``conversion_at``, and a site has far fewer
  conversions than intents, so each page scans forward from its key without sorting.

**Personal columns.** Click ids (``gclid``, ``gbraid``, ``wbraid``, a conversion's
``click_id``) are exported only while the visitor's ``ads`` consent is granted and unexpired,
and a session's ``visitor_id`` only under its ``analytics`` consent (the script keeps that id
after analytics consent). The consent subject is the session's ``consent_subject`` (a
conversion's copy of it, taken at the seal); it is read to decide, never exported. The caller's
number of a matched call (``call_number``) comes from the site's own phone system, not from the
visitor's browser, so no tracking consent governs it: it is exported as the dashboard shows it.
The site's own targets (the number or link clicked) are not personal data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, FromClause, Select, and_, or_, select

from service.db.tables.ads import ads_uploads
from service.db.tables.tracking import track_intents, track_sessions
from service.tracking.dashboard_metrics import intents_with_sessions
from service.tracking.scope import SiteScope, where_site

ExportKindName = Literal["intents", "sessions", "conversions"]
EXPORT_KINDS: tuple[ExportKindName, ...] = ("intents", "sessions", "conversions")
ADS = "ads"
ANALYTICS = "analytics"


@dataclass(frozen=True, slots=True)
class ExportColumn:
    name: str
    expression: ColumnElement[Any]
    #: The consent purpose the value needs at export time (None: not personal).
    purpose: str | None = None
    #: A timestamp: shown in the site's zone, which its header names.
    zoned: bool = False


@dataclass(frozen=True, slots=True)
class Window:
    """UTC instants ``[start, end)`` of the export's range."""

    start: datetime
    end: datetime


def _col(name: str, expression: Any, purpose: str | None = None) -> ExportColumn:
    zoned = name.endswith("_at")
    return ExportColumn(name, expression, purpose, zoned)


@dataclass(frozen=True, slots=True)
class ExportKind:
    name: ExportKindName
    columns: tuple[ExportColumn, ...]
    #: The keyset, in order (every one of them is also an exported column).
    keys: tuple[ColumnElement[Any], ...]
    subject: ColumnElement[Any]
    from_clause: FromClause
    #: The range condition and everything else a row must meet, for a scope and a window.
    conditions: Callable[[SiteScope, Window], tuple[ColumnElement[bool], ...]]

    def key_positions(self) -> tuple[int, ...]:
        exprs = [column.expression for column in self.columns]
        return tuple(next(n for n, e in enumerate(exprs) if e is key) for key in self.keys)

    def page(
        self, scope: SiteScope, window: Window, after: tuple[Any, ...] | None, limit: int
    ) -> Select[Any]:
        """The next ``limit`` rows after the keyset position ``after`` (None: the first)."""
        query = (
            select(
                *(column.expression.label(column.name) for column in self.columns),
                self.subject.label("consent_subject"),
            )
            .select_from(self.from_clause)
            .where(*self.conditions(scope, window))
        )
        if after is not None:
            query = query.where(_after(self.keys, after))
        return query.order_by(*self.keys).limit(limit)


def _after(keys: tuple[ColumnElement[Any], ...], values: tuple[Any, ...]) -> ColumnElement[bool]:
    """Strictly after ``values`` in the order of ``keys``. Spelt ``k1 >= v1 AND (k1 > v1 OR
    k2 > v2)``: the first term is a range both databases seek the index with (neither uses one
    for a row-value comparison, and SQLite's OR optimisation would scan from the site's first
    row on every page)."""
    first: ColumnElement[bool] = keys[0] > values[0]
    if len(keys) == 1:
        return first
    return and_(keys[0] >= values[0], or_(first, _after(keys[1:], values[1:])))


_I, _S, _U = track_intents.c, track_sessions.c, ads_uploads.c

INTENTS = ExportKind(
    name="intents",
    columns=(
        _col("id", _I.id),
        _col("created_at", _I.created_at),
        _col("kind", _I.kind),
        _col("target", _I.target),
        _col("status", _I.status),
        _col("lead_score", _I.lead_score),
        _col("amount", _I.amount),
        _col("currency", _I.currency),
        _col("sealed_at", _I.sealed_at),
        _col("sealed_by", _I.sealed_by),
        _col("ref_code", _I.ref_code),
        _col("gclid", _I.gclid, ADS),
        _col("gbraid", _I.gbraid, ADS),
        _col("wbraid", _I.wbraid, ADS),
        _col("call_number", _I.call_number),
        _col("call_at", _I.call_at),
        _col("conversation_id", _I.conversation_id),
        _col("session_id", _I.session_id),
        _col("source", _S.source),
        _col("medium", _S.medium),
        _col("campaign", _S.campaign),
        _col("term", _S.term),
        _col("content", _S.content),
        _col("landing_page", _S.landing_page),
        _col("referrer", _S.referrer),
        _col("device", _S.device),
        _col("country", _S.country),
        _col("updated_at", _I.updated_at),
    ),
    keys=(_I.created_at, _I.id),
    subject=_S.consent_subject,
    from_clause=intents_with_sessions(),
    conditions=lambda scope, window: (
        where_site(track_intents, scope),
        _I.deleted_at.is_(None),
        _I.created_at >= window.start,
        _I.created_at < window.end,
    ),
)

SESSIONS = ExportKind(
    name="sessions",
    columns=(
        _col("id", _S.id),
        _col("started_at", _S.started_at),
        _col("last_seen_at", _S.last_seen_at),
        _col("visitor_id", _S.visitor_id, ANALYTICS),
        _col("page_views", _S.page_views),
        _col("events", _S.events),
        _col("landing_page", _S.landing_page),
        _col("referrer", _S.referrer),
        _col("source", _S.source),
        _col("medium", _S.medium),
        _col("campaign", _S.campaign),
        _col("term", _S.term),
        _col("content", _S.content),
        _col("gclid", _S.gclid, ADS),
        _col("gbraid", _S.gbraid, ADS),
        _col("wbraid", _S.wbraid, ADS),
        _col("device", _S.device),
        _col("country", _S.country),
    ),
    keys=(_S.started_at, _S.id),
    subject=_S.consent_subject,
    from_clause=track_sessions,
    conditions=lambda scope, window: (
        where_site(track_sessions, scope),
        _S.started_at >= window.start,
        _S.started_at < window.end,
    ),
)

CONVERSIONS = ExportKind(
    name="conversions",
    columns=(
        _col("intent_id", _U.intent_id),
        _col("conversion_at", _U.conversion_at),
        _col("value", _U.value),
        _col("currency", _U.currency),
        _col("status", _U.status),
        _col("reason", _U.reason),
        _col("message", _U.message),
        _col("order_id", _U.order_id),
        _col("click_kind", _U.click_kind),
        _col("click_id", _U.click_id, ADS),
        _col("attempts", _U.attempts),
        _col("request_id", _U.request_id),
        _col("next_attempt_at", _U.next_attempt_at),
        _col("uploaded_at", _U.uploaded_at),
        _col("created_at", _U.created_at),
        _col("updated_at", _U.updated_at),
    ),
    keys=(_U.intent_id,),
    subject=_U.consent_subject,
    # Only live intents' conversions: a soft-deleted intent takes its upload row out too.
    from_clause=ads_uploads.join(
        track_intents, and_(_I.site_id == _U.site_id, _I.id == _U.intent_id)
    ),
    conditions=lambda scope, window: (
        where_site(ads_uploads, scope),
        where_site(track_intents, scope),
        _I.deleted_at.is_(None),
        _U.conversion_at >= window.start,
        _U.conversion_at < window.end,
    ),
)

KINDS: dict[ExportKindName, ExportKind] = {
    "intents": INTENTS,
    "sessions": SESSIONS,
    "conversions": CONVERSIONS,
}
