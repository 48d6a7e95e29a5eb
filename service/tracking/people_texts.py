# ruff: noqa: RUF001  (Turkish text legitimately contains the dotless i)
"""End-user texts of people's login, in Turkish, German and English."""

from __future__ import annotations

from core.i18n import Locale

#: The message that carries a login code (Telegram, and the body of the e-mail).
PERSON_OTP_MESSAGE: dict[Locale, str] = {
    "tr": (
        "🔐 kervan giriş kodunuz: {code}\n"
        "{minutes} dakika geçerlidir ve yalnızca bir kez kullanılabilir. "
        "Bu kodu kimseyle paylaşmayın; siz istemediyseniz bu mesajı yok sayın."
    ),
    "de": (
        "🔐 Ihr kervan-Anmeldecode: {code}\n"
        "Er gilt {minutes} Minuten und nur einmal. Geben Sie ihn niemandem weiter; "
        "wenn Sie ihn nicht angefordert haben, ignorieren Sie diese Nachricht."
    ),
    "en": (
        "🔐 Your kervan login code: {code}\n"
        "It is valid for {minutes} minutes and can be used once. Do not share it with anyone; "
        "if you did not ask for it, ignore this message."
    ),
}

#: The subject of the e-mail that carries a login code (the code itself only in the body, not
#: in the subject that notifications and mail lists show).
PERSON_OTP_SUBJECT: dict[Locale, str] = {
    "tr": "kervan giriş kodunuz",
    "de": "Ihr kervan-Anmeldecode",
    "en": "Your kervan login code",
}

#: The e-mail a new member gets when an owner adds them to a site.
INVITED_SUBJECT: dict[Locale, str] = {
    "tr": "{site} sitesine eklendiniz",
    "de": "Sie wurden zur Website {site} hinzugefügt",
    "en": "You were added to the site {site}",
}

INVITED_MESSAGE: dict[Locale, str] = {
    "tr": (
        "Merhaba {name},\n\n{inviter} sizi kervan'da {site} sitesine {role} olarak ekledi.\n"
        "Giriş yapmak için {link} adresini açın ve e-posta adresinizi girin; "
        "size tek kullanımlık bir kod göndereceğiz."
    ),
    "de": (
        "Hallo {name},\n\n{inviter} hat Sie bei kervan zur Website {site} als {role} "
        "hinzugefügt.\nZum Anmelden öffnen Sie {link} und geben Ihre E-Mail-Adresse ein; "
        "wir senden Ihnen einen einmaligen Code."
    ),
    "en": (
        "Hello {name},\n\n{inviter} added you to the site {site} on kervan as {role}.\n"
        "To sign in, open {link} and enter your e-mail address; we will send you a one-time "
        "code."
    ),
}

ROLE_NAMES: dict[Locale, dict[str, str]] = {
    "tr": {"owner": "sahip", "editor": "düzenleyici", "viewer": "izleyici"},
    "de": {"owner": "Inhaber", "editor": "Bearbeiter", "viewer": "Betrachter"},
    "en": {"owner": "owner", "editor": "editor", "viewer": "viewer"},
}


def person_otp_text(*, code: str, language: Locale, ttl_seconds: float) -> str:
    minutes = max(1, round(ttl_seconds / 60))
    return PERSON_OTP_MESSAGE[language].format(code=code, minutes=minutes)
