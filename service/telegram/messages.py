"""End-user texts of Telegram notifications, in Turkish, German and English.

Messages are sent as plain text (no ``parse_mode``), so a customer-supplied name cannot inject
markup; control characters are still stripped and the name is shortened.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from core.i18n import Locale

Language = Locale
MAX_NAME_CHARS = 64

_NEW_CUSTOMER: dict[str, str] = {
    "tr": "🔔 Yeni müşteri sırada!\n👤 {name}\n⏰ {time}\n📋 Sıra numarası: {position}",  # noqa: RUF001
    "de": (
        "🔔 Neuer Kunde wartet!\n👤 {name}\n⏰ {time}\n📋 Position in der Warteschlange: {position}"
    ),
    "en": "🔔 New customer waiting!\n👤 {name}\n⏰ {time}\n📋 Queue position: {position}",
}
_TIME_FORMAT: dict[str, str] = {
    "tr": "%d.%m.%Y %H:%M:%S",
    "de": "%d.%m.%Y, %H:%M:%S Uhr",
    "en": "%Y-%m-%d %H:%M:%S",
}
_ANONYMOUS: dict[str, str] = {"tr": "(isimsiz)", "de": "(ohne Namen)", "en": "(no name)"}


def clean_name(name: str) -> str:
    printable = "".join(" " if unicodedata.category(ch)[0] in ("C", "Z") else ch for ch in name)
    collapsed = " ".join(printable.split())
    if len(collapsed) > MAX_NAME_CHARS:
        collapsed = collapsed[: MAX_NAME_CHARS - 1] + "…"
    return collapsed


def new_customer_text(
    *, name: str, at: float, position: int, language: Language, timezone: str = "UTC"
) -> str:
    """The "new customer waiting" alert; ``at`` is a Unix time, shown in ``timezone``."""
    if position < 1:
        raise ValueError("queue positions start at 1")
    moment = datetime.fromtimestamp(at, tz=UTC).astimezone(ZoneInfo(timezone))
    return _NEW_CUSTOMER[language].format(
        name=clean_name(name) or _ANONYMOUS[language],
        time=moment.strftime(_TIME_FORMAT[language]),
        position=position,
    )


_FALLBACK: dict[str, str] = {
    "tr": "⚠️ Telegram bildirimi {attempts} denemeden sonra iletilemedi: {error}\n\n{original}",
    "de": (
        "⚠️ Telegram-Benachrichtigung nach {attempts} Versuchen nicht zugestellt: {error}\n\n"
        "{original}"
    ),
    "en": "⚠️ Telegram notification not delivered after {attempts} attempts: {error}\n\n{original}",
}


def fallback_text(*, language: Language, attempts: int, error: str, original: str) -> str:
    """The alert posted to the fallback webhook when a Telegram message could not be sent."""
    return _FALLBACK[language].format(attempts=attempts, error=error[:300], original=original)
