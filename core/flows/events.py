"""Ingestion batches: navigation events and page views, validated item by item.

A batch is accepted whole or refused whole: every invalid item is reported with its index, and
nothing of a refused batch is stored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import ValidationFailed
from core.flows.paths import normalize_path
from core.flows.segments import validate_segment

MAX_BATCH = 1000
#: Page views older than this, or this far ahead of the server's clock, are refused: a wrong
#: clock must not pin a session's state (later views are never paired with an earlier one).
MAX_VIEW_AGE_SECONDS = 7 * 86_400.0
MAX_CLOCK_SKEW_SECONDS = 300.0
#: A session id's syntax; the OpenAPI document states this same pattern.
SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"
#: A page view's ``ts`` lies in (0, MAX_TIMESTAMP) Unix seconds (and near the server's clock).
MAX_TIMESTAMP = 1e11
_SESSION = re.compile(SESSION_ID_PATTERN)
_NAVIGATION_KEYS = frozenset({"seg", "from", "to"})
_PAGE_VIEW_KEYS = frozenset({"session_id", "seg", "path", "ts"})

#: The rule on page-view times that no schema can state (it depends on the server's clock).
TS_WINDOW_RULE = "'ts' is too far from the server's clock"


@dataclass(frozen=True, slots=True)
class Navigation:
    seg: str
    from_path: str
    to_path: str


@dataclass(frozen=True, slots=True)
class PageView:
    session_id: str
    seg: str
    path: str
    ts: float  # seconds since the Unix epoch


@dataclass(frozen=True, slots=True)
class Batch:
    navigations: list[Navigation]
    page_views: list[PageView]


def _text(item: dict[str, Any], key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise ValidationFailed(f"'{key}' must be a string", details={"field": key})
    return value


def _field(item: dict[str, Any], key: str, parse: Any) -> Any:
    try:
        return parse(_text(item, key))
    except ValidationFailed as exc:
        raise ValidationFailed(f"'{key}': {exc.message}", details={"field": key}) from None


def _parse_item(
    item: Any, segments: Collection[str], origins: Collection[str], now: float | None
) -> Any:
    if not isinstance(item, dict):
        raise ValidationFailed("an event must be an object")
    keys = set(item)
    seg = _field(item, "seg", lambda s: validate_segment(s, segments))
    if keys == _NAVIGATION_KEYS:
        return Navigation(
            seg,
            _field(item, "from", lambda p: normalize_path(p, origins)),
            _field(item, "to", lambda p: normalize_path(p, origins)),
        )
    if keys == _PAGE_VIEW_KEYS:
        session_id = _text(item, "session_id")
        if _SESSION.match(session_id) is None:
            raise ValidationFailed(
                "'session_id' must be 8-64 characters of letters, digits, '_' and '-'",
                details={"field": "session_id"},
            )
        ts = item["ts"]
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
            raise ValidationFailed("'ts' must be a number (Unix seconds)", details={"field": "ts"})
        if not 0 < ts < MAX_TIMESTAMP:
            raise ValidationFailed("'ts' must be Unix seconds", details={"field": "ts"})
        if now is not None and not (
            now - MAX_VIEW_AGE_SECONDS <= ts <= now + MAX_CLOCK_SKEW_SECONDS
        ):
            raise ValidationFailed(
                TS_WINDOW_RULE,
                details={"field": "ts", "server_time": now},
            )
        path = _field(item, "path", lambda p: normalize_path(p, origins))
        return PageView(session_id, seg, path, float(ts))
    raise ValidationFailed(
        "an event is either {seg, from, to} or {session_id, seg, path, ts}",
        details={"keys": sorted(str(k) for k in keys)[:10]},
    )


def parse_batch(
    items: Sequence[Any],
    segments: Collection[str],
    origins: Collection[str],
    now: float | None = None,
) -> Batch:
    """Validate every item; raise one ``ValidationFailed`` listing each bad index.

    With ``now``, page views must lie within the last week and at most 5 minutes ahead.
    """
    if len(items) > MAX_BATCH:
        raise ValidationFailed(
            f"a batch holds at most {MAX_BATCH} events", details={"count": len(items)}
        )
    navigations: list[Navigation] = []
    page_views: list[PageView] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            parsed = _parse_item(item, segments, origins, now)
        except ValidationFailed as exc:
            detail = exc.details if isinstance(exc.details, dict) else {}
            errors.append({"index": index, "message": exc.message, **detail})
            continue
        if isinstance(parsed, Navigation):
            navigations.append(parsed)
        else:
            page_views.append(parsed)
    if errors:
        raise ValidationFailed(
            f"{len(errors)} of {len(items)} events are invalid; nothing was stored",
            details=errors,
        )
    return Batch(navigations, page_views)


def pair_page_views(
    views: Sequence[PageView],
    last_seen: dict[str, PageView],
    max_gap_seconds: float,
) -> tuple[list[Navigation], dict[str, PageView]]:
    """Turn page views into navigations using each session's previous view.

    ``last_seen`` holds the stored last view per session (it is not modified). Views are taken
    in time order per session; a view older than the session's latest known one is too late to
    pair and is dropped, as is a pair further apart than ``max_gap_seconds`` or within one page
    (a reload) or across segments. Returns the navigations and the new last view per session.
    """
    latest = dict(last_seen)
    changed: dict[str, PageView] = {}
    out: list[Navigation] = []
    for view in sorted(views, key=lambda v: (v.session_id, v.ts)):
        prev = latest.get(view.session_id)
        if prev is not None and view.ts < prev.ts:
            continue
        if (
            prev is not None
            and prev.seg == view.seg
            and prev.path != view.path
            and view.ts - prev.ts <= max_gap_seconds
        ):
            out.append(Navigation(view.seg, prev.path, view.path))
        latest[view.session_id] = view
        changed[view.session_id] = view
    return out, changed
