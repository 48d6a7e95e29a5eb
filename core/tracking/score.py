"""A lead's score (0-100) from simple signals of the session its click came from.

The signals are the ones a site owner reads the same way: how much of the site the visitor
saw, how long they stayed, whether they came from an ad click, whether they came back, and
whether they landed on (or clicked from) a contact page. Each adds its weight; a site may set
its own weights in its config (``lead_score_weights``), unknown or invalid entries ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

DEFAULT_WEIGHTS: dict[str, int] = {
    "base": 10,
    # For each page view after the first, up to pages_max in all.
    "page_view": 4,
    "pages_max": 20,
    # Time on site before the click: the larger one that applies.
    "time_1m": 10,
    "time_3m": 20,
    "ads_click": 20,
    "returning": 15,
    "contact_page": 15,
}
MAX_SCORE = 100

CONTACT_WORDS = (
    "contact",
    "contacts",
    "contact-us",
    "contactus",
    "iletisim",
    "iletişim",
    "bize-ulasin",
    "bize-ula\u015f\u0131n",  # with the Turkish letters
    "kontakt",
    "kontaktformular",
    "anfahrt",
)


@dataclass(frozen=True, slots=True)
class Signals:
    page_views: int
    seconds_on_site: float
    ads_click: bool
    returning: bool
    contact_page: bool


def is_contact_path(path: str | None) -> bool:
    """A path with a contact page segment (``/iletisim``, ``/de/kontakt.html``)."""
    if not path:
        return False
    for segment in unquote(path).lower().split("/"):
        stem = segment.rsplit(".", 1)[0] if "." in segment else segment
        if stem in CONTACT_WORDS:
            return True
    return False


def weights_from_config(value: Any) -> dict[str, int]:
    """The default weights with a site's valid overrides (integers 0-100) applied."""
    weights = dict(DEFAULT_WEIGHTS)
    if isinstance(value, Mapping):
        for key, weight in value.items():
            if (
                key in weights
                and isinstance(weight, int)
                and not isinstance(weight, bool)
                and 0 <= weight <= MAX_SCORE
            ):
                weights[key] = weight
    return weights


def lead_score(signals: Signals, weights: Mapping[str, int] = DEFAULT_WEIGHTS) -> int:
    score = weights["base"]
    extra_pages = max(0, signals.page_views - 1)
    score += min(extra_pages * weights["page_view"], weights["pages_max"])
    if signals.seconds_on_site >= 180:
        score += weights["time_3m"]
    elif signals.seconds_on_site >= 60:
        score += weights["time_1m"]
    if signals.ads_click:
        score += weights["ads_click"]
    if signals.returning:
        score += weights["returning"]
    if signals.contact_page:
        score += weights["contact_page"]
    return max(0, min(MAX_SCORE, score))
