# ruff: noqa: RUF001  (Turkish text legitimately contains the dotless i)
"""End-user texts of the quota warnings to a site's owners, in Turkish, German and English."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from core.i18n import Locale
from core.tracking.quota import USED_UP

Kind = Literal["events", "intents"]

KIND_NAMES: dict[Locale, dict[Kind, str]] = {
    "tr": {"events": "olay", "intents": "talep (telefon ve WhatsApp tıklaması)"},
    "de": {"events": "Ereignisse", "intents": "Anfragen (Anruf- und WhatsApp-Klicks)"},
    "en": {"events": "events", "intents": "intents (phone and WhatsApp clicks)"},
}

EARLY_SUBJECT: dict[Locale, str] = {
    "tr": "kervan: {site} aylık {kind} kotasında %{percent} seviyesine ulaştı",
    "de": "kervan: {site} hat {percent} % des monatlichen Kontingents für {kind} verbraucht",
    "en": "kervan: {site} has used {percent} % of its monthly {kind} quota",
}

USED_UP_SUBJECT: dict[Locale, str] = {
    "tr": "kervan: {site} aylık {kind} kotasını doldurdu",
    "de": "kervan: {site} hat das monatliche Kontingent für {kind} aufgebraucht",
    "en": "kervan: {site} has used up its monthly {kind} quota",
}

EARLY_MESSAGE: dict[Locale, str] = {
    "tr": (
        "Merhaba {name},\n\n{site} sitesi {month} ayında {limit} {kind} kotasının {used} "
        "tanesini kullandı (%{percent}).\n{consequence}\nSayaç {reset} tarihinde sıfırlanır. "
        "Kotayı yükseltmek için kervan yöneticinizle iletişime geçin."
    ),
    "de": (
        "Hallo {name},\n\ndie Website {site} hat im Monat {month} {used} von {limit} {kind} "
        "verbraucht ({percent} %).\n{consequence}\nDer Zähler beginnt am {reset} von vorn. "
        "Um das Kontingent zu erhöhen, wenden Sie sich an Ihre kervan-Administration."
    ),
    "en": (
        "Hello {name},\n\nthe site {site} has used {used} of its {limit} {kind} for {month} "
        "({percent} %).\n{consequence}\nThe count starts over on {reset}. To raise the quota, "
        "contact your kervan administrator."
    ),
}

USED_UP_MESSAGE: dict[Locale, str] = {
    "tr": (
        "Merhaba {name},\n\n{site} sitesi {month} ayı için {limit} {kind} kotasının tamamını "
        "kullandı.\n{consequence}\nSayaç {reset} tarihinde sıfırlanır. Kotayı yükseltmek için "
        "kervan yöneticinizle iletişime geçin."
    ),
    "de": (
        "Hallo {name},\n\ndie Website {site} hat ihr Kontingent von {limit} {kind} für den "
        "Monat {month} aufgebraucht.\n{consequence}\nDer Zähler beginnt am {reset} von vorn. "
        "Um das Kontingent zu erhöhen, wenden Sie sich an Ihre kervan-Administration."
    ),
    "en": (
        "Hello {name},\n\nthe site {site} has used up its {limit} {kind} for {month}.\n"
        "{consequence}\nThe count starts over on {reset}. To raise the quota, contact your "
        "kervan administrator."
    ),
}

#: What happens once the quota is used up: "when" (the early warning) and "now" (used up).
CONSEQUENCE: dict[Locale, dict[tuple[Kind, bool], str]] = {
    "tr": {
        ("events", False): "Kota dolduğunda yeni olaylar o tarihe kadar reddedilir.",
        ("events", True): "Yeni olaylar sayaç sıfırlanana kadar reddedilir.",
        ("intents", False): (
            "Kota dolduğunda tıklamalar olay olarak kaydedilmeye devam eder, ancak o tarihe "
            "kadar yeni talep oluşturulmaz."
        ),
        ("intents", True): (
            "Tıklamalar olay olarak kaydedilmeye devam eder, ancak sayaç sıfırlanana kadar "
            "yeni talep oluşturulmaz."
        ),
    },
    "de": {
        ("events", False): "Ist das Kontingent aufgebraucht, werden neue Ereignisse bis dahin "
        "abgelehnt.",
        ("events", True): "Neue Ereignisse werden abgelehnt, bis der Zähler von vorn beginnt.",
        ("intents", False): (
            "Ist das Kontingent aufgebraucht, werden Klicks weiter als Ereignisse gespeichert, "
            "aber bis dahin keine neuen Anfragen angelegt."
        ),
        ("intents", True): (
            "Klicks werden weiter als Ereignisse gespeichert, aber keine neuen Anfragen "
            "angelegt, bis der Zähler von vorn beginnt."
        ),
    },
    "en": {
        ("events", False): "Once the quota is used up, new events are refused until then.",
        ("events", True): "New events are refused until the count starts over.",
        ("intents", False): (
            "Once the quota is used up, clicks are still stored as events, but no new intents "
            "are made until then."
        ),
        ("intents", True): (
            "Clicks are still stored as events, but no new intents are made until the count "
            "starts over."
        ),
    },
}

_THOUSANDS: dict[Locale, str] = {"tr": ".", "de": ".", "en": ","}


def number(value: int, language: Locale) -> str:
    """``1.000.000`` in Turkish and German, ``1,000,000`` in English."""
    return f"{value:,}".replace(",", _THOUSANDS[language])


def moment(at: float, language: Locale) -> str:
    """The reset, in UTC (quota months are UTC months)."""
    when = datetime.fromtimestamp(at, UTC)
    if language == "en":
        return when.strftime("%Y-%m-%d %H:%M UTC")
    return when.strftime("%d.%m.%Y %H:%M UTC")


def quota_warning_text(
    *,
    language: Locale,
    kind: Kind,
    level: int,
    site: str,
    name: str,
    used: int,
    limit: int,
    month: str,
    reset_at: float,
) -> tuple[str, str]:
    """The warning's subject and text (the Telegram message is the text)."""
    used_up = level >= USED_UP
    fields = {
        "site": site,
        "name": name,
        "kind": KIND_NAMES[language][kind],
        "percent": level,
        "used": number(used, language),
        "limit": number(limit, language),
        "month": month,
        "reset": moment(reset_at, language),
        "consequence": CONSEQUENCE[language][(kind, used_up)],
    }
    subject = (USED_UP_SUBJECT if used_up else EARLY_SUBJECT)[language].format(**fields)
    text = (USED_UP_MESSAGE if used_up else EARLY_MESSAGE)[language].format(**fields)
    return subject, text
