"""One event of a batch, judged on its own: accepted for storage, or rejected with a reason.

A bad event never takes its neighbours down: each is checked here independently and the answer
lists every event's outcome. Event times are the visitor's clock corrected by how far it is off
the server's (``sent_at`` against the time the batch arrived), and must lie within the dedup
window: an older event could be a resend the dedup table no longer remembers.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson

from core.json_depth import json_depth
from core.tracking.targets import INTENT_KINDS, IntentKind, normalize_target
from core.tracking.wire import MAX_MILLIS, MAX_URL_LENGTH

EventType = Literal["page_view", "click", "intent", "custom"]
EVENT_TYPES: tuple[EventType, ...] = ("page_view", "click", "intent", "custom")
EVENT_ID_PATTERN = r"^[A-Za-z0-9_.:-]{8,64}$"
REF_PATTERN = r"^[A-Z2-9]{6}$"
MAX_NAME_LENGTH = 64
#: Stored widths: the path column, and the part of a page title kept.
MAX_PATH_LENGTH = 512
MAX_TITLE_LENGTH = 200
MAX_PROPS_DEPTH = 8

#: Why an event was rejected (the ``reason`` of its result).
Reason = Literal[
    "invalid_event",
    "too_large",
    "invalid_id",
    "invalid_type",
    "invalid_ts",
    "too_old",
    "invalid_field",
    "invalid_intent",
    "invalid_target",
    "invalid_ref",
    "quota_exceeded",
    "storage_failed",
]

_EVENT_ID = re.compile(EVENT_ID_PATTERN)
_REF = re.compile(REF_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class IntentClick:
    kind: IntentKind
    #: The normalized number or chat link (``core.tracking.targets``).
    target: str
    #: WhatsApp: the code the script put in the pre-filled message.
    ref: str | None


@dataclass(frozen=True, slots=True)
class Event:
    """An event that passed its checks (it may still turn out to be a duplicate)."""

    index: int
    id: str
    type: EventType
    #: When it happened: Unix seconds on the server's clock, never later than the batch.
    ts: float
    url: str
    path: str
    name: str | None = None
    title: str | None = None
    referrer: str | None = None
    props: dict[str, Any] | None = None
    intent: IntentClick | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    index: int
    #: The event's id when it had a readable one (echoed in the answer).
    id: str | None
    reason: Reason
    message: str


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The same id earlier in the same batch."""

    index: int
    id: str


@dataclass(frozen=True, slots=True)
class EventRules:
    #: The server's clock when the batch arrived (Unix seconds).
    now: float
    max_event_bytes: int
    #: Events older than this (corrected) are refused: ``too_old``.
    max_age_seconds: float
    #: Server time minus the visitor's clock (seconds), from ``sent_at``; 0 when unknown.
    clock_offset: float = 0.0
    #: The whole batch's size when known: no event of a batch within the event limit can
    #: pass it, and their sizes need not be measured one by one.
    batch_bytes: int | None = None


Checked = Event | Rejected | Duplicate


def clock_offset(now: float, sent_at_ms: float | None) -> float:
    return 0.0 if sent_at_ms is None else now - sent_at_ms / 1000.0


class _Refused(Exception):
    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _optional_text(raw: dict[str, Any], key: str, limit: int) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise _Refused("invalid_field", f"'{key}' must be a string of at most {limit} characters")
    return value


def _name(raw: dict[str, Any], *, required: bool) -> str | None:
    value = raw.get("name")
    if value is None and not required:
        return None
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_NAME_LENGTH
        or _CONTROL.search(value)
    ):
        raise _Refused(
            "invalid_field",
            f"'name' must be 1-{MAX_NAME_LENGTH} characters without control characters",
        )
    return value


@lru_cache(maxsize=4096)
def page_path(url: str) -> str | None:
    """The path of an http(s) URL with a host (cut to the stored width), else ``None``.

    Cached: a visitor's events mostly repeat a handful of page URLs."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    return (parts.path or "/")[:MAX_PATH_LENGTH]


def _url(raw: dict[str, Any]) -> tuple[str, str]:
    value = raw.get("url")
    if not isinstance(value, str) or not 0 < len(value) <= MAX_URL_LENGTH:
        raise _Refused("invalid_field", f"'url' must be the page's URL (1-{MAX_URL_LENGTH})")
    path = page_path(value)
    if path is None:
        raise _Refused("invalid_field", "'url' must be an http(s) URL with a host")
    return value, path


def _ts(raw: dict[str, Any], rules: EventRules) -> float:
    value = raw.get("ts")
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value < MAX_MILLIS
    ):
        raise _Refused("invalid_ts", "'ts' must be Unix milliseconds")
    corrected = value / 1000.0 + rules.clock_offset
    if corrected < rules.now - rules.max_age_seconds:
        raise _Refused(
            "too_old",
            f"the event is older than {rules.max_age_seconds / 86_400:g} days; it is not stored",
        )
    # A clock that ran ahead between the event and the batch: the event cannot be later than
    # the batch that carries it.
    return min(corrected, rules.now)


def _intent(raw: dict[str, Any]) -> IntentClick:
    value = raw.get("intent")
    if not isinstance(value, dict) or value.get("kind") not in INTENT_KINDS:
        raise _Refused("invalid_intent", "'intent' must be {kind: phone|whatsapp, target, ref?}")
    kind: IntentKind = value["kind"]
    target = value.get("target")
    normalized = normalize_target(kind, target) if isinstance(target, str) else None
    if normalized is None:
        raise _Refused(
            "invalid_target",
            "'intent.target' must be a tel: number or a WhatsApp link"
            if kind == "phone" or not isinstance(target, str)
            else "'intent.target' names no WhatsApp number or chat",
        )
    ref = value.get("ref")
    if ref is not None and (
        kind != "whatsapp" or not isinstance(ref, str) or not _REF.fullmatch(ref)
    ):
        raise _Refused(
            "invalid_ref",
            "'intent.ref' is 6 characters of A-Z and 2-9, and only for WhatsApp intents",
        )
    return IntentClick(kind, normalized, ref)


def _props(raw: dict[str, Any]) -> dict[str, Any] | None:
    value = raw.get("props")
    if value is None:
        return None
    if not isinstance(value, dict) or json_depth(value) > MAX_PROPS_DEPTH:
        raise _Refused(
            "invalid_field", f"'props' must be an object nested at most {MAX_PROPS_DEPTH} deep"
        )
    return value


def _check(index: int, raw: dict[str, Any], event_id: str, rules: EventRules) -> Event:
    kind = raw.get("type")
    if kind not in EVENT_TYPES:
        raise _Refused("invalid_type", "'type' must be page_view, click, intent or custom")
    ts = _ts(raw, rules)
    url, path = _url(raw)
    if kind == "page_view":
        title = _optional_text(raw, "title", 4096)
        referrer = _optional_text(raw, "referrer", MAX_URL_LENGTH)
        return Event(
            index,
            event_id,
            kind,
            ts,
            url,
            path,
            title=title[:MAX_TITLE_LENGTH] if title else None,
            referrer=referrer or None,
        )
    if kind == "click":
        return Event(index, event_id, kind, ts, url, path, name=_name(raw, required=False))
    if kind == "custom":
        return Event(
            index,
            event_id,
            kind,
            ts,
            url,
            path,
            name=_name(raw, required=True),
            props=_props(raw),
        )
    intent = _intent(raw)
    return Event(index, event_id, "intent", ts, url, path, name=intent.kind, intent=intent)


def _size(raw: dict[str, Any]) -> int:
    """The event's JSON size in bytes."""
    try:
        return len(orjson.dumps(raw))
    except TypeError:  # an integer past 64 bits (a parser other than orjson let it through)
        return len(json.dumps(raw, ensure_ascii=False).encode("utf-8", "surrogatepass"))


def check_event(index: int, raw: Any, rules: EventRules) -> Event | Rejected:
    if not isinstance(raw, dict):
        return Rejected(index, None, "invalid_event", "an event must be a JSON object")
    event_id = raw.get("id")
    readable = event_id if isinstance(event_id, str) and len(event_id) <= 64 else None
    measure = rules.batch_bytes is None or rules.batch_bytes > rules.max_event_bytes
    if measure and _size(raw) > rules.max_event_bytes:
        return Rejected(
            index,
            readable,
            "too_large",
            f"the event is larger than {rules.max_event_bytes} bytes",
        )
    if readable is None or not _EVENT_ID.fullmatch(readable):
        return Rejected(index, readable, "invalid_id", "'id' must be 8-64 of [A-Za-z0-9_.:-]")
    try:
        return _check(index, raw, readable, rules)
    except _Refused as refused:
        return Rejected(index, readable, refused.reason, refused.message)


def check_events(raws: Sequence[Any], rules: EventRules) -> list[Checked]:
    """Every event's verdict, in the batch's order. An event repeating the id of an earlier
    valid one is its ``Duplicate``; after a rejected one, the next is judged on its own."""
    seen: set[str] = set()
    out: list[Checked] = []
    for index, raw in enumerate(raws):
        checked = check_event(index, raw, rules)
        if isinstance(checked, Event):
            if checked.id in seen:
                out.append(Duplicate(index, checked.id))
                continue
            seen.add(checked.id)
        out.append(checked)
    return out
