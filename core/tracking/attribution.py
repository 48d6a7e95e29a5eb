"""Where a visit came from: source, medium and campaign from UTM tags, the ad click id, or the
referrer's host.

- UTM tags (``utm_source``, ``utm_medium``, ``utm_campaign``, ``utm_term``, ``utm_content``)
  win when present;
- else a Google Ads click id means ``google / cpc`` (auto-tagging adds no UTM tags), and
  ``msclkid`` means ``bing / cpc``;
- else an external referrer: known search engines are ``organic``, known social sites
  ``social``, anything else a ``referral`` from its host;
- else ``(direct) / (none)``. A referrer on the site's own hosts is no source (internal).

Exactly one Google click id is kept (Google Ads accepts one of ``gclid``, ``gbraid``,
``wbraid`` per conversion): ``gclid`` when present, else ``wbraid`` (web), else ``gbraid``;
the ones dropped are recorded.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

DIRECT = "(direct)"
NONE = "(none)"
#: Stored column widths.
SOURCE_LENGTH = 100
MEDIUM_LENGTH = 100
CAMPAIGN_LENGTH = 200
TERM_LENGTH = 200
REFERRER_LENGTH = 512
CLICK_ID_LENGTH = 255
#: In order of preference.
CLICK_ID_KINDS = ("gclid", "wbraid", "gbraid")
_CLICK_ID = re.compile(r"^[A-Za-z0-9_\-.~]{1,255}$")

_SEARCH = {
    "google": "google",
    "bing": "bing",
    "yahoo": "yahoo",
    "yandex": "yandex",
    "duckduckgo": "duckduckgo",
    "baidu": "baidu",
    "ecosia": "ecosia",
    "naver": "naver",
    "seznam": "seznam",
    "qwant": "qwant",
    "startpage": "startpage",
}
_SOCIAL = {
    "facebook.com": "facebook",
    "fb.com": "facebook",
    "instagram.com": "instagram",
    "t.co": "twitter",
    "twitter.com": "twitter",
    "x.com": "twitter",
    "linkedin.com": "linkedin",
    "lnkd.in": "linkedin",
    "youtube.com": "youtube",
    "youtu.be": "youtube",
    "pinterest.com": "pinterest",
    "tiktok.com": "tiktok",
    "reddit.com": "reddit",
    "threads.net": "threads",
}


@dataclass(frozen=True, slots=True)
class ClickId:
    kind: str  # gclid | wbraid | gbraid
    value: str
    #: Other kinds the URL carried, not kept.
    dropped: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Attribution:
    source: str
    medium: str
    campaign: str | None = None
    term: str | None = None
    content: str | None = None
    click: ClickId | None = None
    #: The external referrer (internal ones are not kept).
    referrer: str | None = None
    #: The URL carried UTM tags or a click id: a campaign landing, which starts a session of
    #: its own when it differs from the current one.
    tagged: bool = False

    @property
    def is_direct(self) -> bool:
        return self.source == DIRECT

    @property
    def campaign_key(self) -> tuple[str, str, str | None]:
        return (self.source, self.medium, self.campaign)


DIRECT_VISIT = Attribution(DIRECT, NONE)


def _host(value: str | None) -> str:
    return (value or "").lower().removeprefix("www.")


def own_hosts(domains: Collection[str]) -> frozenset[str]:
    """The site's hosts as referrers are compared (no port, no ``www.``)."""
    return frozenset(h for d in domains if (h := _host(d.split(":", 1)[0])))


def _first(query: dict[str, list[str]], key: str, limit: int) -> str | None:
    values = query.get(key)
    if not values:
        return None
    value = values[0].strip()
    return value[:limit] or None


def click_id(query: dict[str, list[str]]) -> ClickId | None:
    present = [
        (kind, value)
        for kind in CLICK_ID_KINDS
        if (value := _first(query, kind, CLICK_ID_LENGTH + 1)) and _CLICK_ID.match(value)
    ]
    if not present:
        return None
    kind, value = present[0]
    return ClickId(kind, value, tuple(k for k, _ in present[1:]))


def referrer_source(referrer: str | None, hosts: Collection[str]) -> tuple[str, str] | None:
    """``(source, medium)`` of an external referrer; ``None`` for none or an internal one."""
    if not referrer:
        return None
    try:
        parts = urlsplit(referrer)
        host = _host(parts.hostname)
    except ValueError:
        return None
    if parts.scheme == "android-app":
        return (host or "android-app")[:SOURCE_LENGTH], "referral"
    if not host or host in hosts:
        return None
    labels = host.split(".")
    for label in labels[:-1]:
        engine = _SEARCH.get(label)
        if engine is not None and not (engine == "google" and labels[0] in ("mail", "docs")):
            return engine, "organic"
    for suffix, network in _SOCIAL.items():
        if host == suffix or host.endswith("." + suffix):
            return network, "social"
    return host[:SOURCE_LENGTH], "referral"


def attribute(url: str | None, referrer: str | None, hosts: Collection[str]) -> Attribution:
    """The attribution of a landing on ``url`` from ``referrer``."""
    if not referrer and (not url or "?" not in url):
        return DIRECT_VISIT  # most page views: an internal navigation without a query
    query: dict[str, list[str]] = {}
    if url and "?" in url:
        try:
            query = parse_qs(urlsplit(url).query)
        except ValueError:
            query = {}
    click = click_id(query)
    utm_source = _first(query, "utm_source", SOURCE_LENGTH)
    utm_medium = _first(query, "utm_medium", MEDIUM_LENGTH)
    campaign = _first(query, "utm_campaign", CAMPAIGN_LENGTH)
    term = _first(query, "utm_term", TERM_LENGTH)
    content = _first(query, "utm_content", TERM_LENGTH)
    tagged = click is not None or any((utm_source, utm_medium, campaign))
    from_referrer = referrer_source(referrer, hosts)
    external = referrer[:REFERRER_LENGTH] if referrer and from_referrer else None
    if utm_source or utm_medium or campaign:
        source = utm_source or (from_referrer[0] if from_referrer else DIRECT)
        medium = utm_medium or ("cpc" if click is not None else NONE)
    elif click is not None:
        source, medium = "google", "cpc"
    elif _first(query, "msclkid", CLICK_ID_LENGTH):
        source, medium, tagged = "bing", "cpc", True
    elif from_referrer is not None:
        source, medium = from_referrer
    else:
        source, medium = DIRECT, NONE
    return Attribution(
        source=source,
        medium=medium,
        campaign=campaign,
        term=term,
        content=content,
        click=click,
        referrer=external,
        tagged=tagged,
    )
