# ruff: noqa: RUF001  (Turkish text legitimately contains the dotless i)
"""End-user texts of refusals, in Turkish, German and English (chosen by Accept-Language)."""

from __future__ import annotations

from core.i18n import Locale, from_accept_language

RATE_LIMITED: dict[Locale, str] = {
    "tr": "Çok fazla istek gönderildi; lütfen biraz sonra tekrar deneyin.",
    "de": "Zu viele Anfragen; bitte versuchen Sie es etwas später erneut.",
    "en": "Too many requests; please try again a little later.",
}

LIMITER_UNAVAILABLE: dict[Locale, str] = {
    "tr": "Hizmet şu anda yoğun; lütfen birkaç saniye sonra tekrar deneyin.",
    "de": "Der Dienst ist gerade ausgelastet; bitte versuchen Sie es in ein paar Sekunden erneut.",
    "en": "The service is busy right now; please try again in a few seconds.",
}

LOCKED_OUT: dict[Locale, str] = {
    "tr": "Çok fazla başarısız deneme yapıldı; lütfen daha sonra tekrar deneyin.",
    "de": "Zu viele fehlgeschlagene Versuche; bitte versuchen Sie es später erneut.",
    "en": "Too many failed attempts; please try again later.",
}


def text(texts: dict[Locale, str], accept_language: str | None) -> str:
    """The text in the visitor's preferred supported language (``Accept-Language``)."""
    return texts[from_accept_language(accept_language)]
