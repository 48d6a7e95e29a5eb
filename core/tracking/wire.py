"""The envelope of a ``POST /t/sync`` batch: what the whole batch stands or falls on.

Only the envelope refuses a batch (the site key, the visitor, the ``events`` array and the
optional metadata around them); each event is then judged on its own (``core.tracking.events``).
Unknown keys are ignored, so a newer script can add fields without breaking older servers.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from core.consent.model import SUBJECT_PATTERN
from core.errors import ValidationFailed

#: ``st_`` + the site's key (24 url-safe characters today; some room for other lengths).
SITE_KEY_PATTERN = r"^st_[A-Za-z0-9_-]{8,37}$"
VISITOR_PATTERN = r"^v_[A-Za-z0-9_-]{16,40}$"
MAX_URL_LENGTH = 2048
MAX_LANGUAGE_LENGTH = 35
MAX_SCREEN_LENGTH = 16
DEVICE_HINTS = ("mobile", "desktop", "tablet")
#: ``sent_at`` is Unix milliseconds below this (year 5138).
MAX_MILLIS = 1e14

_SITE_KEY = re.compile(SITE_KEY_PATTERN)
_VISITOR = re.compile(VISITOR_PATTERN)
_SUBJECT = re.compile(SUBJECT_PATTERN)


@dataclass(frozen=True, slots=True)
class Page:
    """A page address and the referrer it was reached from."""

    url: str | None
    referrer: str | None


@dataclass(frozen=True, slots=True)
class Envelope:
    site_key: str
    visitor: str
    #: When the script sent the batch, on the visitor's clock (Unix ms); corrects event times.
    sent_at_ms: float | None
    consent_subject: str | None
    context: Page
    #: The landing page of the script's session, sent with every batch of it.
    landing: Page | None
    device_hint: str | None
    language: str | None
    events: list[Any]


def is_site_key(value: Any) -> bool:
    return isinstance(value, str) and _SITE_KEY.fullmatch(value) is not None


class _Problems:
    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.items.append({"field": f"body.{field}", "message": message})


def _optional_text(
    data: dict[str, Any], key: str, limit: int, problems: _Problems, where: str
) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        problems.add(f"{where}{key}", f"must be a string of at most {limit} characters or null")
        return None
    return value or None


def _page(value: Any, problems: _Problems, where: str) -> Page | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.add(where, "must be an object or null")
        return None
    prefix = f"{where}."
    return Page(
        _optional_text(value, "url", MAX_URL_LENGTH, problems, prefix),
        _optional_text(value, "referrer", MAX_URL_LENGTH, problems, prefix),
    )


def parse_envelope(body: Any, max_events: int) -> Envelope:
    """The batch's envelope, or ``ValidationFailed`` naming every bad field (also past
    ``max_events``: the script splits the batch)."""
    if not isinstance(body, dict):
        raise ValidationFailed(
            "the body must be a JSON object",
            details=[{"field": "body", "message": "must be an object"}],
        )
    problems = _Problems()
    site = body.get("site")
    if not is_site_key(site):
        problems.add("site", "must be the site's public key (st_...)")
    visitor = body.get("visitor")
    if not isinstance(visitor, str) or _VISITOR.fullmatch(visitor) is None:
        problems.add("visitor", "must be v_ followed by 16-40 of [A-Za-z0-9_-]")
    events = body.get("events")
    if not isinstance(events, list):
        problems.add("events", "must be an array of events")
    sent_at = body.get("sent_at")
    if sent_at is not None and (
        isinstance(sent_at, bool)
        or not isinstance(sent_at, int | float)
        or not math.isfinite(sent_at)
        or not 0 < sent_at < MAX_MILLIS
    ):
        problems.add("sent_at", "must be Unix milliseconds or null")
        sent_at = None
    subject: str | None = None
    consent = body.get("consent")
    if consent is not None and not isinstance(consent, dict):
        problems.add("consent", "must be an object or null")
    elif consent is not None:
        for flag in ("analytics", "ads"):
            if consent.get(flag) is not None and not isinstance(consent.get(flag), bool):
                problems.add(f"consent.{flag}", "must be true, false or null")
        raw_subject = consent.get("subject")
        if raw_subject is not None:
            if isinstance(raw_subject, str) and _SUBJECT.fullmatch(raw_subject):
                subject = raw_subject
            else:
                problems.add("consent.subject", "must be a consent subject id or null")
    context = body.get("context")
    hint: str | None = None
    language: str | None = None
    page = Page(None, None)
    if context is not None and not isinstance(context, dict):
        problems.add("context", "must be an object or null")
    elif context is not None:
        page = _page(context, problems, "context") or page
        raw_hint = context.get("user_agent_hint")
        if raw_hint is not None and raw_hint not in DEVICE_HINTS:
            problems.add("context.user_agent_hint", "must be mobile, desktop, tablet or null")
        elif raw_hint is not None:
            hint = str(raw_hint)
        language = _optional_text(context, "language", MAX_LANGUAGE_LENGTH, problems, "context.")
        _optional_text(context, "screen", MAX_SCREEN_LENGTH, problems, "context.")
    landing = _page(body.get("landing"), problems, "landing")
    if problems.items:
        raise ValidationFailed(
            f"the batch is malformed: {problems.items[0]['field']} {problems.items[0]['message']}",
            details=problems.items,
        )
    assert isinstance(site, str) and isinstance(visitor, str) and isinstance(events, list)
    if len(events) > max_events:
        raise ValidationFailed(
            f"a batch holds at most {max_events} events; split it",
            details=[{"field": "body.events", "message": f"{len(events)} > {max_events}"}],
        )
    return Envelope(
        site_key=site,
        visitor=visitor,
        sent_at_ms=float(sent_at) if sent_at is not None else None,
        consent_subject=subject,
        context=page,
        landing=landing,
        device_hint=hint,
        language=language,
        events=events,
    )
