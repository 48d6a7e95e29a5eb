"""E-mail through the outbound job queue: a sender interface, its SMTP implementation, the
``mail`` queue's handler and the producer.

Like Telegram messages (``service/telegram/jobs.py``), an e-mail is a durable job: enqueued by the
request (or in the caller's transaction), sent by the worker with retries and backoff, and
dead-lettered when the server refuses it for good. ``install_mail(runtime)`` registers the
handler when ``KERVAN_TRACKING_SMTP_HOST`` is set; without it e-mail delivery is off.

Delivery is at least once: a job run again after a lost answer sends the same ``Message-ID``
(derived from the job key), by which mail systems recognise the copy.
"""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from core.errors import ProviderError
from core.jobs import Job, PermanentFailure
from service.logging import get_logger
from service.queue.base import JobQueue
from service.runtime import Runtime
from service.settings import Settings

log = get_logger("kervan.mail")

MAIL_QUEUE = "mail"
PROVIDER = "smtp"
Security = Literal["starttls", "tls", "none"]
_MAX_SUBJECT_CHARS = 200
_MAX_TEXT_CHARS = 20_000


@dataclass(frozen=True, slots=True)
class MailMessage:
    to: str
    subject: str
    text: str
    #: Names the message across retries (the job key): the same key, the same Message-ID.
    key: str


class MailError(Exception):
    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


class MailSender(Protocol):
    """Sends one e-mail or raises ``MailError`` (``permanent``: sending it again cannot help)."""

    async def send(self, message: MailMessage) -> None: ...


def message_id(key: str, sender: str) -> str:
    domain = sender.rpartition("@")[2].strip(">").strip() or "kervan.invalid"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


class SmtpSender:
    """``MailSender`` over SMTP (stdlib ``smtplib`` in a worker thread: one connection per
    message, which is fine for login codes and owner warnings)."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        security: Security = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.security = security
        self.username = username
        self.password = password
        self.timeout = timeout
        self.ssl_context = ssl_context or ssl.create_default_context()

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpSender:
        assert settings.tracking_smtp_host is not None and settings.tracking_smtp_from is not None
        password = settings.tracking_smtp_password
        return cls(
            host=settings.tracking_smtp_host,
            port=settings.tracking_smtp_port,
            sender=settings.tracking_smtp_from,
            security=settings.tracking_smtp_security,
            username=settings.tracking_smtp_username,
            password=password.get_secret_value() if password is not None else None,
            timeout=settings.tracking_smtp_timeout_seconds,
        )

    def build(self, message: MailMessage) -> EmailMessage:
        email = EmailMessage()
        email["From"] = self.sender
        email["To"] = message.to
        email["Subject"] = message.subject
        email["Date"] = formatdate(localtime=False, usegmt=True)
        email["Message-ID"] = message_id(message.key, self.sender)
        email["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to it
        email.set_content(message.text)
        return email

    async def send(self, message: MailMessage) -> None:
        await asyncio.to_thread(self._send, self.build(message))

    def _send(self, email: EmailMessage) -> None:
        try:
            if self.security == "tls":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=self.ssl_context
                )
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with client:
                client.ehlo()
                if self.security == "starttls":
                    client.starttls(context=self.ssl_context)
                    client.ehlo()
                if self.username and self.password is not None:
                    client.login(self.username, self.password)
                client.send_message(email)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _text in exc.recipients.values()]
            raise MailError(
                f"the server refused the recipient ({codes})",
                permanent=all(code >= 500 for code in codes),
            ) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise MailError(f"SMTP login refused ({exc.smtp_code})", permanent=True) from None
        except smtplib.SMTPResponseException as exc:
            raise MailError(
                f"the SMTP server answered {exc.smtp_code}", permanent=exc.smtp_code >= 500
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise MailError(f"the SMTP server lacks a feature: {exc}", permanent=True) from None
        except (smtplib.SMTPException, OSError) as exc:  # connection, TLS, timeouts
            raise MailError(f"SMTP unreachable: {type(exc).__name__}", permanent=False) from None


def mail_handler(sender: MailSender) -> Any:
    async def handle(job: Job) -> int:
        to, subject, text = (job.payload.get(k) for k in ("to", "subject", "text"))
        if not all(isinstance(v, str) and v for v in (to, subject, text)):
            raise PermanentFailure("payload needs to, subject and text")
        assert isinstance(to, str) and isinstance(subject, str) and isinstance(text, str)
        try:
            await sender.send(MailMessage(to=to, subject=subject, text=text, key=job.key))
        except MailError as exc:
            if exc.permanent:
                raise PermanentFailure(exc.message) from None
            raise ProviderError(exc.message) from None
        return 250

    return handle


async def enqueue_mail(
    queue: JobQueue,
    *,
    to: str,
    subject: str,
    text: str,
    key: str,
    conn: AsyncConnection | None = None,
) -> bool:
    """Queue one e-mail; False when ``key`` was seen before (``key`` names the event, not the
    attempt: the same key is never sent twice)."""
    payload = {"to": to, "subject": subject[:_MAX_SUBJECT_CHARS], "text": text[:_MAX_TEXT_CHARS]}
    return await queue.enqueue(MAIL_QUEUE, payload, key=f"mail:{key}"[:191], conn=conn)


def mail_enabled(settings: Settings) -> bool:
    return settings.tracking_smtp_host is not None


def install_mail(runtime: Runtime, sender: MailSender | None = None) -> bool:
    """Register the ``mail`` handler on this runtime; False when e-mail is off."""
    if sender is None:
        if not mail_enabled(runtime.settings):
            log.info("e-mail is off: KERVAN_TRACKING_SMTP_HOST is not set")
            return False
        sender = SmtpSender.from_settings(runtime.settings)
    runtime.handlers.register(MAIL_QUEUE, mail_handler(sender), provider=PROVIDER)
    return True
