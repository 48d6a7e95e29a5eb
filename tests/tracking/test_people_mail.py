"""E-mail delivery against a real SMTP server the test starts (aiosmtpd): plain, STARTTLS and
implicit TLS with a certificate made here, login, refusals classified as permanent or not, the
``mail`` queue handler, and a person's login code travelling the whole way (request, outbound
queue, embedded worker, SMTP) and back into a session. Plus the settings' validation."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.errors import ProviderError
from core.jobs import Job, PermanentFailure
from service.settings import Settings, SettingsError, load_settings
from service.tracking.mail import (
    MailError,
    MailMessage,
    SmtpSender,
    mail_handler,
    message_id,
)
from service.tracking.people import add_person

SENDER = "kervan <codes@kervan.test>"


@dataclass
class Inbox:
    """What the SMTP server received; ``refuse`` answers RCPT with that reply instead."""

    messages: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    refuse: str | None = None
    arrived: asyncio.Event | None = None
    loop: asyncio.AbstractEventLoop | None = None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.refuse is not None:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(message_from_bytes(envelope.content))
        if self.arrived is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(self.arrived.set)
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def smtp_server(inbox: Inbox, **kwargs: Any) -> Iterator[int]:
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@dataclass
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1, which only the tests' client contexts trust."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    made = Certificate(folder / "cert.pem", folder / "key.pem")
    made.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    made.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return made


def sample(key: str = "otp:person:1:abc") -> MailMessage:
    return MailMessage(
        to="hans@example.com", subject="Ihr kervan-Anmeldecode", text="Code: 123456", key=key
    )


async def test_plain_smtp_delivers_the_message_with_a_stable_message_id() -> None:
    inbox = Inbox()
    with smtp_server(inbox) as port:
        sender = SmtpSender(host="127.0.0.1", port=port, sender=SENDER, security="none")
        await sender.send(sample())
        await sender.send(sample())  # a job run again: the same Message-ID
    assert inbox.envelopes == [("codes@kervan.test", ["hans@example.com"])] * 2
    first, second = inbox.messages
    assert first["Subject"] == "Ihr kervan-Anmeldecode" and first["From"] == SENDER
    assert first["Message-ID"] == second["Message-ID"] == message_id(sample().key, SENDER)
    assert first["Auto-Submitted"] == "auto-generated"
    assert first.get_payload(decode=True).decode().strip() == "Code: 123456"  # type: ignore[union-attr]
    assert message_id("other", SENDER) != first["Message-ID"]


async def test_starttls_with_login(certificate: Certificate) -> None:
    seen: list[tuple[str, bytes]] = []

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        seen.append((data.login.decode(), data.password))
        return AuthResult(success=data.password == b"s3cret", handled=False)

    inbox = Inbox()
    with smtp_server(
        inbox,
        tls_context=certificate.server_context(),
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
    ) as port:
        secure = SmtpSender(
            host="127.0.0.1",
            port=port,
            sender=SENDER,
            security="starttls",
            username="kervan",
            password="s3cret",
            ssl_context=certificate.client_context(),
        )
        await secure.send(sample())
        # A wrong password is permanent (retrying cannot fix a configuration).
        wrong = SmtpSender(
            host="127.0.0.1",
            port=port,
            sender=SENDER,
            security="starttls",
            username="kervan",
            password="wrong",
            ssl_context=certificate.client_context(),
        )
        with pytest.raises(MailError) as refused:
            await wrong.send(sample())
        assert refused.value.permanent
        # A certificate the client does not trust: no mail, and worth retrying later.
        untrusted = SmtpSender(
            host="127.0.0.1", port=port, sender=SENDER, security="starttls", password=None
        )
        with pytest.raises(MailError) as unverified:
            await untrusted.send(sample())
        assert not unverified.value.permanent
        # Plain, with STARTTLS required by the server: refused (530), permanent.
        plain = SmtpSender(host="127.0.0.1", port=port, sender=SENDER, security="none")
        with pytest.raises(MailError) as cleartext:
            await plain.send(sample())
        assert cleartext.value.permanent
    # smtplib tries each mechanism the server offers before it gives up on a password.
    assert seen[0] == ("kervan", b"s3cret") and set(seen[1:]) == {("kervan", b"wrong")}
    assert len(inbox.messages) == 1


async def test_implicit_tls(certificate: Certificate) -> None:
    inbox = Inbox()
    with smtp_server(inbox, ssl_context=certificate.server_context()) as port:
        sender = SmtpSender(
            host="127.0.0.1",
            port=port,
            sender=SENDER,
            security="tls",
            ssl_context=certificate.client_context(),
        )
        await sender.send(sample())
    assert [m["Subject"] for m in inbox.messages] == ["Ihr kervan-Anmeldecode"]


def _job(payload: dict[str, Any]) -> Job:
    return Job(
        key="mail:otp:person:1:abc",
        queue="mail",
        payload=payload,
        attempt=1,
        max_attempts=5,
        enqueued_at=0.0,
    )


async def test_the_queue_handler_tells_permanent_refusals_from_passing_ones() -> None:
    payload = {"to": "hans@example.com", "subject": "s", "text": "t"}
    inbox = Inbox()
    with smtp_server(inbox) as port:
        handler = mail_handler(
            SmtpSender(host="127.0.0.1", port=port, sender=SENDER, security="none")
        )
        assert await handler(_job(payload)) == 250
        assert inbox.messages[0]["Message-ID"] == message_id("mail:otp:person:1:abc", SENDER)
        inbox.refuse = "550 5.1.1 No such user"
        with pytest.raises(PermanentFailure):
            await handler(_job(payload))
        inbox.refuse = "451 4.3.0 Try again later"
        with pytest.raises(ProviderError):
            await handler(_job(payload))
        with pytest.raises(PermanentFailure):
            await handler(_job({"to": "hans@example.com"}))
    # The server is gone: unreachable is worth retrying.
    with pytest.raises(ProviderError):
        await handler(_job(payload))


async def test_a_login_code_travels_by_email_through_the_queue(
    make_settings: Callable[..., Settings],
    make_client: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]],
) -> None:
    inbox = Inbox(arrived=asyncio.Event(), loop=asyncio.get_running_loop())
    with smtp_server(inbox) as port:
        settings = make_settings(
            tracking_smtp_host="127.0.0.1",
            tracking_smtp_port=port,
            tracking_smtp_security="none",
            tracking_smtp_from=SENDER,
            # The worker runs in the app and sends the e-mail job.
            queue_embedded_worker=True,
            queue_poll_interval_seconds=0.05,
        )
        async with make_client(settings) as client:
            runtime = client.app.state.runtime  # type: ignore[attr-defined]
            async with runtime.db.begin() as conn:
                await add_person(
                    conn,
                    email="hans@example.com",
                    name="Hans",
                    language="de",
                    now=dt.datetime.now(dt.UTC),
                    actor="test",
                )
            answer = await client.post("/t/auth/otp/request", json={"email": "hans@example.com"})
            assert answer.status_code == 202
            assert inbox.arrived is not None
            await asyncio.wait_for(inbox.arrived.wait(), timeout=60)
            [mail] = inbox.messages
            assert mail["To"] == "hans@example.com" and mail["Subject"] == "Ihr kervan-Anmeldecode"
            body = mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
            assert "Anmeldecode" in body and "5 Minuten" in body
            code = body.split(": ")[1][:6]
            assert code not in mail["Subject"]
            verified = await client.post(
                "/t/auth/otp/verify", json={"email": "hans@example.com", "code": code}
            )
            assert verified.status_code == 200, verified.text
            assert verified.json()["person"]["email"] == "hans@example.com"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"tracking_smtp_from": "a@b.example"}, "KERVAN_TRACKING_SMTP_HOST: required"),
        ({"tracking_smtp_host": "smtp.example.com"}, "KERVAN_TRACKING_SMTP_FROM: required"),
        (
            {"tracking_smtp_host": "smtp://x", "tracking_smtp_from": "a@b.example"},
            "KERVAN_TRACKING_SMTP_HOST: a host name",
        ),
        (
            {"tracking_smtp_host": "smtp.example.com", "tracking_smtp_from": "nobody"},
            "KERVAN_TRACKING_SMTP_FROM: not an e-mail address",
        ),
        (
            {
                "tracking_smtp_host": "smtp.example.com",
                "tracking_smtp_from": "a@b.example",
                "tracking_smtp_username": "u",
            },
            "KERVAN_TRACKING_SMTP_USERNAME: the username and the password are set together",
        ),
        (
            {
                "tracking_smtp_host": "smtp.example.com",
                "tracking_smtp_from": "a@b.example",
                "tracking_smtp_username": "u",
                "tracking_smtp_password": "p",
                "tracking_smtp_security": "none",
            },
            "KERVAN_TRACKING_SMTP_SECURITY: `none` would send the password in clear",
        ),
        ({"tracking_smtp_port": 0}, "KERVAN_TRACKING_SMTP_PORT: "),
    ],
)
def test_settings_are_validated(values: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(_env_file=None, **values)
    assert message in "\n".join(refused.value.lines)


def test_valid_settings_and_the_secret_stays_masked() -> None:
    settings = load_settings(
        _env_file=None,
        tracking_smtp_host="smtp.example.com",
        tracking_smtp_port=465,
        tracking_smtp_security="tls",
        tracking_smtp_username="kervan",
        tracking_smtp_password="p4ss",
        tracking_smtp_from="kervan <codes@example.com>",
    )
    assert settings.tracking_smtp_password is not None
    assert "p4ss" not in str(settings.model_dump(mode="json"))
    sender = SmtpSender.from_settings(settings)
    assert (sender.host, sender.port, sender.security, sender.password) == (
        "smtp.example.com",
        465,
        "tls",
        "p4ss",
    )
    local = load_settings(
        _env_file=None,
        tracking_smtp_host="localhost",
        tracking_smtp_from="codes@localhost",
        tracking_smtp_security="none",
        tracking_smtp_username="u",
        tracking_smtp_password="p",
    )
    assert local.tracking_smtp_host == "localhost"
