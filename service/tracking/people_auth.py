"""``PersonAuth``: people sign in to sites' dashboards by one-time code, through the same login
layer as admins (``service/admins/login.py``), as the kind ``person``.

The login name is the e-mail address (lower-cased). The code goes to the person's Telegram chat
when they have one and Telegram is on, else by e-mail when SMTP is configured
(``KERVAN_TRACKING_SMTP_*``), each through the outbound job queue; with neither, nothing is sent
(and the answer is still the same 202). Codes, sessions, lockouts (``otp`` rule per
``person:<address>``) and the audit rows (``person.otp.*``, ``person.session.*``) behave exactly
as the admin ones. Sessions live in the state backend under the kind ``person``: an admin's token
is never a person's, and the reverse.
"""

from __future__ import annotations

import secrets

from service.admins.login import OtpLogin
from service.auth import ClientInfo
from service.logging import get_logger
from service.runtime import Runtime
from service.telegram.jobs import enqueue_telegram_message
from service.tracking.mail import enqueue_mail, mail_enabled
from service.tracking.people import Person, find_person, get_person
from service.tracking.people_texts import PERSON_OTP_SUBJECT, person_otp_text

log = get_logger("kervan.tracking.people")

KIND = "person"
#: The session cookie: ``__Host-`` (Secure, Path=/, no Domain) where kervan is reached over TLS.
PERSON_COOKIE_PRODUCTION = "__Host-kervan_person"
PERSON_COOKIE_DEVELOPMENT = "kervan_person"


def person_cookie_name(env: str) -> str:
    return PERSON_COOKIE_PRODUCTION if env == "production" else PERSON_COOKIE_DEVELOPMENT


class PersonAuth(OtpLogin[Person]):
    kind = KIND

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime, cookie_name=person_cookie_name(runtime.settings.env))

    async def find_account(self, name: str) -> Person | None:
        async with self.db.connect() as conn:
            return await find_person(conn, name)

    async def get_account(self, account_id: int) -> Person | None:
        async with self.db.connect() as conn:
            return await get_person(conn, account_id)

    def login_name(self, account: Person) -> str:
        return account.email

    def actor(self, account_id: int, login_name: str) -> str:
        return f"person:{account_id}"

    def delivery_channel(self, account: Person) -> str | None:
        settings = self.runtime.settings
        if self.runtime.queue is None:
            return None
        if account.telegram_chat_id and settings.telegram_bot_token is not None:
            return "telegram"
        if mail_enabled(settings):
            return "email"
        log.warning(
            "a person asked for a login code, but neither Telegram (for their chat) nor e-mail "
            "(KERVAN_TRACKING_SMTP_HOST) is on: nothing was sent",
            extra={"person": account.id},
        )
        return None

    async def send_code(self, account: Person, code: str, channel: str) -> None:
        queue = self.runtime.queue
        assert queue is not None  # delivery_channel checked it
        ttl = self.runtime.settings.admin_otp_ttl_seconds
        message = person_otp_text(code=code, language=account.language, ttl_seconds=ttl)
        # A key of its own per code: the queue never drops a code as a duplicate.
        key = f"otp:{KIND}:{account.id}:{secrets.token_hex(8)}"
        if channel == "telegram":
            assert account.telegram_chat_id is not None
            await enqueue_telegram_message(
                queue, chat_id=account.telegram_chat_id, text=message, key=key
            )
        else:
            subject = PERSON_OTP_SUBJECT[account.language]
            await enqueue_mail(queue, to=account.email, subject=subject, text=message, key=key)

    async def authenticate_person(
        self, token: str, *, client: ClientInfo | None = None
    ) -> tuple[Person, str] | None:
        """The person whose live session ``token`` is, and the session's public id."""
        found = await self.authenticate(token, client=client)
        return None if found is None else (found[0], found[1].id)
