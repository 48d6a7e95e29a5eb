"""The languages end users are answered in, and how a request's language is chosen."""

from __future__ import annotations

from typing import Literal

Locale = Literal["tr", "de", "en"]
SUPPORTED_LOCALES: tuple[Locale, ...] = ("tr", "de", "en")
#: The business's home market: used when nothing says otherwise.
DEFAULT_LOCALE: Locale = "tr"
#: Used when the visitor named languages but none we speak.
FALLBACK_LOCALE: Locale = "en"


def resolve_locale(value: str | None) -> Locale:
    """``de-AT`` -> ``de``; missing -> Turkish; any other language -> English."""
    if not value:
        return DEFAULT_LOCALE
    primary = value.strip().replace("_", "-").split("-")[0].lower()
    for locale in SUPPORTED_LOCALES:
        if primary == locale:
            return locale
    return FALLBACK_LOCALE


def from_accept_language(header: str | None) -> Locale:
    """The supported language the visitor prefers most, honouring ``q`` weights.

    ``fr, de;q=0.8`` -> ``de``; ``de;q=0`` (explicitly refused) is never chosen; no header ->
    Turkish; only unsupported languages -> English.
    """
    if not header or not header.strip():
        return DEFAULT_LOCALE
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                weight = float(params[2:])
            except ValueError:
                weight = 0.0
        if tag and weight > 0:
            ranked.append((-weight, index, tag.strip()))
    for _, _, tag in sorted(ranked):
        primary = tag.replace("_", "-").split("-")[0].lower()
        for locale in SUPPORTED_LOCALES:
            if primary == locale:
                return locale
    return FALLBACK_LOCALE
