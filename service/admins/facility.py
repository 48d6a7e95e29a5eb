"""``AdminAuth``: admin login by one-time code over Telegram, and admin sessions.

One facility per runtime (``runtime.facility(AdminAuth)``), also provided as the
``service.auth.AdminAuthenticator`` that the admin guard and the WebSocket handler ask. It is
the ``"admin"`` kind of ``OtpLogin`` (``service/admins/login.py``, which site people's login
shares), with accounts in the database and codes sent over Telegram.

Requesting a code answers the same whether or not the admin exists or may log in, so the API
names no accounts. Every code request, failed attempt, session created, refreshed and revoked is an
audit row (``admin.otp.*``, ``admin.session.*``; subject ``admin:<name>``). Attempts count toward
the ``otp`` lockout per admin name, read and written in the rate limiter's backend, which fails
closed: when it cannot be asked, nobody logs in.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from service.admins.accounts import Admin, find_admin, get_admin
from service.admins.login import LOCKOUT_RULE, OtpLogin, SessionCookie
from service.admins.otp import otp_text
from service.admins.sessions import Session
from service.auth import AdminAuthenticator, AdminPrincipal, ClientInfo, session_cookie_name
from service.logging import get_logger
from service.runtime import Runtime
from service.telegram.jobs import enqueue_telegram_message

log = get_logger("kervan.admins")

KIND = "admin"

__all__ = ["KIND", "LOCKOUT_RULE", "AdminAuth", "Login", "SessionCookie"]


@dataclass(frozen=True, slots=True)
class Login:
    principal: AdminPrincipal
    token: str
    session: Session


class AdminAuth(OtpLogin[Admin], AdminAuthenticator):
    kind = KIND

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime, cookie_name=session_cookie_name(runtime.settings.env))

    # ------------------------------------------------------------------ the admin kind

    async def find_account(self, name: str) -> Admin | None:
        return await find_admin(self.db, name)

    async def get_account(self, account_id: int) -> Admin | None:
        return await get_admin(self.db, account_id)

    def login_name(self, account: Admin) -> str:
        return account.name

    def delivery_channel(self, account: Admin) -> str | None:
        if self.runtime.settings.telegram_bot_token is None or self.runtime.queue is None:
            log.warning(
                "an admin asked for a login code, but Telegram is off "
                "(KERVAN_TELEGRAM_BOT_TOKEN is not set): nothing was sent",
                extra={"admin": account.name},
            )
            return None
        return "telegram"

    async def send_code(self, account: Admin, code: str, channel: str) -> None:
        queue = self.runtime.queue
        assert queue is not None  # delivery_channel checked it
        message = otp_text(
            code=code,
            language=account.language,
            ttl_seconds=self.runtime.settings.admin_otp_ttl_seconds,
        )
        # A key of its own per code: the queue never drops a code as a duplicate. Enqueued at
        # once, not in a transaction: on Redis that would wait for the outbox relay.
        await enqueue_telegram_message(
            queue,
            chat_id=account.telegram_chat_id,
            text=message,
            key=f"otp:{KIND}:{account.id}:{secrets.token_hex(8)}",
        )

    @staticmethod
    def _principal(admin: Admin, session: Session) -> AdminPrincipal:
        return AdminPrincipal(
            id=admin.name,
            method="session",
            admin_id=admin.id,
            name=admin.name,
            language=admin.language,
            session_id=session.id,
        )

    # ------------------------------------------------------------------ the admin API

    async def verify_code(
        self,
        name: str,
        code: str,
        *,
        client: ClientInfo,
        accept_language: str | None = None,
    ) -> Login:
        """A new session for ``name`` when ``code`` is its outstanding code (``verify``)."""
        verified = await self.verify(name, code, client=client, accept_language=accept_language)
        principal = self._principal(verified.account, verified.session)
        return Login(principal, verified.token, verified.session)

    async def authenticate_token(
        self, token: str, *, client: ClientInfo | None = None
    ) -> AdminPrincipal | None:
        """The admin whose live session ``token`` is, sliding the session's expiry; ``None``
        for anything else (including an admin disabled since: the session ends now)."""
        found = await self.authenticate(token, client=client)
        return None if found is None else self._principal(*found)

    async def list_sessions(self, principal: AdminPrincipal) -> list[Session]:
        """The caller's live sessions (none for the API key, which has no account)."""
        if principal.admin_id is None:
            return []
        return await self.sessions.sessions(principal.admin_id)

    async def revoke_session(self, principal: AdminPrincipal, session_id: str) -> bool:
        """End one of the caller's sessions; False when it has no such live session."""
        if principal.admin_id is None:
            return False
        return await self.revoke_one(
            principal.admin_id, session_id, actor=principal.id, by_session=principal.session_id
        )

    async def revoke_all(self, principal: AdminPrincipal) -> list[Session]:
        """End every session of the caller, the current one included."""
        if principal.admin_id is None:
            return []
        return await self.revoke_every(
            principal.admin_id, actor=principal.id, by_session=principal.session_id
        )
