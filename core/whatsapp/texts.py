# ruff: noqa: RUF001  (Turkish text legitimately contains the dotless i)
"""End-user texts in the contact's language (Turkish, German, English)."""

from __future__ import annotations

from core.i18n import Locale, resolve_locale

# The Graph API refuses a text message whose body is longer than this.
TEXT_MAX_CHARS = 4096

UNSUBSCRIBE_LINE: dict[Locale, str] = {
    "tr": "Bu mesajları artık almak istemiyorsanız: {url}",
    "de": "Wenn Sie diese Nachrichten nicht mehr erhalten möchten: {url}",
    "en": "To stop receiving these messages: {url}",
}

STOP_ACK: dict[Locale, str] = {
    "tr": "WhatsApp mesajlarımızdan çıkışınız yapıldı. Tekrar almak için START yazabilirsiniz.",
    "de": "Sie erhalten keine WhatsApp-Nachrichten mehr von uns. Mit START melden Sie sich "
    "wieder an.",
    "en": "You have been unsubscribed from our WhatsApp messages. Reply START to subscribe again.",
}

START_ACK: dict[Locale, str] = {
    "tr": "WhatsApp mesajlarımıza yeniden abone oldunuz. Çıkmak için DUR yazabilirsiniz.",
    "de": "Sie erhalten wieder WhatsApp-Nachrichten von uns. Mit STOPP melden Sie sich ab.",
    "en": "You are subscribed to our WhatsApp messages again. Reply STOP to unsubscribe.",
}

UNSUBSCRIBED_PAGE: dict[Locale, tuple[str, str]] = {
    "tr": ("Abonelikten çıkıldı", "Artık bizden WhatsApp mesajı almayacaksınız."),
    "de": ("Abgemeldet", "Sie erhalten keine WhatsApp-Nachrichten mehr von uns."),
    "en": ("Unsubscribed", "You will no longer receive WhatsApp messages from us."),
}

INVALID_LINK_PAGE: dict[Locale, tuple[str, str]] = {
    "tr": ("Geçersiz bağlantı", "Bu abonelikten çıkma bağlantısı geçerli değil."),
    "de": ("Ungültiger Link", "Dieser Abmeldelink ist nicht gültig."),
    "en": ("Invalid link", "This unsubscribe link is not valid."),
}


def unsubscribe_line(locale: str | None, url: str) -> str:
    return UNSUBSCRIBE_LINE[resolve_locale(locale)].format(url=url)


def with_unsubscribe_line(text: str, locale: str | None, url: str) -> str:
    return f"{text}\n\n{unsubscribe_line(locale, url)}"
