# ruff: noqa: RUF001  (Turkish text legitimately contains the dotless i)
"""What a customer of live support reads, in Turkish, German and English.

Codes are stable (clients may branch on them); texts are for people. ``{eta}`` is filled with
whole minutes, at least one.
"""

from __future__ import annotations

import math

from core.i18n import Locale

TEXTS: dict[str, dict[Locale, str]] = {
    "queue_full": {
        "tr": "Şu anda çok sayıda bekleyen var. Lütfen yaklaşık {eta} dakika sonra tekrar deneyin.",
        "de": "Gerade warten sehr viele. Bitte versuchen Sie es in etwa {eta} Minuten erneut.",
        "en": "Too many people are waiting right now. Please try again in about {eta} minutes.",
    },
    "all_busy": {
        "tr": "Tüm temsilcilerimiz şu anda meşgul. Lütfen yaklaşık {eta} dakika sonra tekrar "
        "deneyin.",
        "de": "Alle Mitarbeiter sind gerade beschäftigt. Bitte versuchen Sie es in etwa {eta} "
        "Minuten erneut.",
        "en": "All our agents are busy right now. Please try again in about {eta} minutes.",
    },
    "unavailable": {
        "tr": "Canlı destek geçici olarak kullanılamıyor. Lütfen biraz sonra tekrar deneyin.",
        "de": "Der Live-Support ist vorübergehend nicht verfügbar. Bitte versuchen Sie es gleich "
        "noch einmal.",
        "en": "Live support is temporarily unavailable. Please try again in a moment.",
    },
    "max_wait": {
        "tr": "Beklediğiniz için teşekkürler. Bir mesaj bırakabilir ya da WhatsApp'tan geri "
        "aranmayı seçebilirsiniz.",
        "de": "Danke für Ihre Geduld. Sie können eine Nachricht hinterlassen oder einen Rückruf "
        "über WhatsApp wählen.",
        "en": "Thank you for waiting. You can leave a message or ask to be called back on "
        "WhatsApp.",
    },
    "message_stored": {
        "tr": "Mesajınızı aldık; size en kısa sürede dönüş yapacağız.",
        "de": "Wir haben Ihre Nachricht erhalten und melden uns so bald wie möglich.",
        "en": "We got your message and will get back to you as soon as we can.",
    },
    "callback_stored": {
        "tr": "Geri arama talebiniz alındı; sizi WhatsApp üzerinden arayacağız.",
        "de": "Ihr Rückrufwunsch ist eingegangen; wir melden uns über WhatsApp.",
        "en": "Your call-back request is noted; we will contact you on WhatsApp.",
    },
    "callback_needs_consent": {
        "tr": "WhatsApp ile geri arama için izniniz gerekiyor. Lütfen bir mesaj bırakın.",
        "de": "Für einen Rückruf über WhatsApp brauchen wir Ihre Einwilligung. Bitte "
        "hinterlassen Sie eine Nachricht.",
        "en": "A WhatsApp call back needs your consent. Please leave a message instead.",
    },
}


def eta_minutes(seconds: float | None) -> int:
    if seconds is None or seconds <= 0:
        return 1
    return max(1, math.ceil(seconds / 60))


def text(code: str, locale: Locale, *, eta_seconds: float | None = None) -> str:
    template = TEXTS[code][locale]
    return template.format(eta=eta_minutes(eta_seconds)) if "{eta}" in template else template
