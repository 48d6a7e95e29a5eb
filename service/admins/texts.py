# ruff: noqa: RUF001  (Turkish text legitimately contains the dotless i)
"""End-user texts of admin login, in Turkish, German and English."""

from __future__ import annotations

from core.i18n import Locale

#: The Telegram message that carries a login code, in the admin's language.
OTP_MESSAGE: dict[Locale, str] = {
    "tr": (
        "🔐 kervan yönetici giriş kodunuz: {code}\n"
        "{minutes} dakika geçerlidir ve yalnızca bir kez kullanılabilir. "
        "Bu kodu kimseyle paylaşmayın; siz istemediyseniz bu mesajı yok sayın."
    ),
    "de": (
        "🔐 Ihr kervan-Anmeldecode für die Verwaltung: {code}\n"
        "Er gilt {minutes} Minuten und nur einmal. Geben Sie ihn niemandem weiter; "
        "wenn Sie ihn nicht angefordert haben, ignorieren Sie diese Nachricht."
    ),
    "en": (
        "🔐 Your kervan admin login code: {code}\n"
        "It is valid for {minutes} minutes and can be used once. Do not share it with anyone; "
        "if you did not ask for it, ignore this message."
    ),
}

#: A refused code (by ``Accept-Language``): one text for every reason, so it names no account.
INVALID_CODE: dict[Locale, str] = {
    "tr": "Kod yanlış, süresi dolmuş ya da zaten kullanılmış; yeni bir kod isteyin.",
    "de": "Der Code ist falsch, abgelaufen oder schon benutzt; fordern Sie einen neuen an.",
    "en": "The code is wrong, expired or already used; ask for a new one.",
}
