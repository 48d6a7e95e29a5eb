"""``AdminAuth``: admin login by one-time code over Telegram, and admin sessions.

One facility per runtime (``runtime.facility(AdminAuth)``), also provided as the
``service.auth.AdminAuthenticator`` that the admin guard and the WebSocket handler ask. The
building blocks (``OtpCodes``, ``SessionStore``) take a *kind* of principal; this facility is
the ``"admin"`` kind, with accounts in the database.

Requesting a code answers the same whether or not the admin exists or may log in, so the API
names no accounts. Every code request, failed attempt, session created, refreshed and revoked is an
audit row (``admin.otp.*``, ``admin.session.*``; subject ``admin:<name>``). Attempts count toward
the ``otp`` lockout per admin name, read and written in the rate limiter's backend, which fails
closed: when it cannot be asked, nobody logs in.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from core.clock import Clock
from core.ratelimit.texts import text
from service.admins.accounts import Admin, find_admin, get_admin
from service.admins.otp import OtpCodes, OtpOutcome, derive_otp_key, otp_text
from service.admins.sessions import Session, SessionStore
from service.admins.texts import INVALID_CODE
from service.audit import record_audit
from service.auth import AdminAuthenticator, AdminPrincipal, ClientInfo, session_cookie_name
from service.db.types import from_timestamp
from service.errors import ApiError
from service.logging import get_logger
from service.ratelimit.lockouts import Lockouts
from service.runtime import Runtime
from service.telegram.jobs import enqueue_telegram_message

log = get_logger("kervan.admins")

KIND = "admin"
LOCKOUT_RULE = "otp"


@dataclass(frozen=True, slots=True)
class SessionCookie:
    """How the routes set the session cookie (and clear it: same name, path and flags)."""

    name: str
    secure: bool
    max_age: int
    path: str = "/"
    httponly: bool = True
    samesite: Literal["lax", "strict", "none"] = "strict"


@dataclass(frozen=True, slots=True)
class Login:
    principal: AdminPrincipal
    token: str
    session: Session


class AdminAuth(AdminAuthenticator):
    def __init__(self, runtime: Runtime) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.db = runtime.db
        self.clock: Clock = runtime.clock
        self.codes = OtpCodes(
            runtime.backends.kv,
            runtime.clock,
            kind=KIND,
            ttl=settings.admin_otp_ttl_seconds,
            key=derive_otp_key(settings.cookie_secret),
        )
        self.sessions = SessionStore(
            runtime.backends,
            runtime.clock,
            kind=KIND,
            idle_ttl=settings.admin_session_ttl_seconds,
            max_age=settings.admin_session_max_age_seconds,
            refresh_interval=settings.admin_session_refresh_seconds,
        )
        self.cookie = SessionCookie(
            name=session_cookie_name(settings.env),
            # Only where kervan is reached over TLS (HSTS): a Secure cookie never rides plain http.
            secure=settings.env == "production",
            max_age=settings.admin_session_max_age_seconds,
        )

    # ------------------------------------------------------------------ helpers

    def _lockouts(self) -> Lockouts:
        limiter = self.runtime.ratelimiter
        if limiter is None:
            raise RuntimeError("the rate limiter is not set up (service/ratelimit/feature.py)")
        return limiter.lockouts

    @staticmethod
    def _lock_key(name: str) -> str:
        return f"{KIND}:{name}"

    def _now(self) -> datetime:
        return from_timestamp(self.clock.now())

    async def _audit(
        self,
        actor: str,
        action: str,
        name: str,
        details: dict[str, Any],
        *,
        conn: AsyncConnection | None = None,
    ) -> None:
        if conn is not None:
            await record_audit(
                conn,
                actor=actor,
                action=action,
                subject=f"{KIND}:{name}",
                details=details,
                ts=self._now(),
            )
            return
        async with self.db.begin() as own:
            await self._audit(actor, action, name, details, conn=own)

    @staticmethod
    def _client(client: ClientInfo) -> dict[str, str]:
        return {"ip": client.ip, "user_agent": client.user_agent[:256]}

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

    def expires_at(self, session: Session) -> float:
        return self.sessions.expires_at(session)

    # ------------------------------------------------------------------ one-time codes

    async def request_code(
        self, name: str, *, client: ClientInfo, accept_language: str | None = None
    ) -> None:
        """Send a login code to ``name``'s Telegram chat when ``name`` is an enabled admin.

        Returns the same (nothing) either way. Refused with 429 while ``name`` is locked out,
        for any name alike, so the refusal tells nothing about accounts either.
        """
        await self._lockouts().ensure_unlocked(LOCKOUT_RULE, self._lock_key(name), accept_language)
        admin = await find_admin(self.db, name)
        sent = admin is not None and admin.active and await self._send_code(admin)
        await self._audit(
            f"ip:{client.ip}", "admin.otp.requested", name, {**self._client(client), "sent": sent}
        )

    async def _send_code(self, admin: Admin) -> bool:
        settings = self.runtime.settings
        queue = self.runtime.queue
        if settings.telegram_bot_token is None or queue is None:
            log.warning(
                "an admin asked for a login code, but Telegram is off "
                "(KERVAN_TELEGRAM_BOT_TOKEN is not set): nothing was sent",
                extra={"admin": admin.name},
            )
            return False
        code = await self.codes.issue(admin.name)
        message = otp_text(
            code=code, language=admin.language, ttl_seconds=settings.admin_otp_ttl_seconds
        )
        # A key of its own per code: the queue never drops a code as a duplicate. Enqueued at
        # once, not in a transaction: on Redis that would wait for the outbox relay.
        await enqueue_telegram_message(
            queue,
            chat_id=admin.telegram_chat_id,
            text=message,
            key=f"otp:{KIND}:{admin.id}:{secrets.token_hex(8)}",
        )
        return True

    async def verify_code(
        self,
        name: str,
        code: str,
        *,
        client: ClientInfo,
        accept_language: str | None = None,
    ) -> Login:
        """A new session for ``name`` when ``code`` is its outstanding code.

        Refused with 401 ``invalid_code`` otherwise (one answer for a wrong, expired or used
        code and for an unknown or disabled admin), and with 429 ``locked_out`` once the
        failures lock the name; the locking failure also discards the outstanding code.
        """
        lockouts = self._lockouts()
        lock_key = self._lock_key(name)
        await lockouts.ensure_unlocked(LOCKOUT_RULE, lock_key, accept_language)
        outcome = await self.codes.verify(name, code)
        admin = await find_admin(self.db, name) if outcome is OtpOutcome.OK else None
        if admin is not None and admin.active:
            await lockouts.success(LOCKOUT_RULE, lock_key)
            new = await self.sessions.create(
                admin.id, admin.name, ip=client.ip, user_agent=client.user_agent
            )
            await self._audit(
                admin.name,
                "admin.session.created",
                admin.name,
                {"session": new.session.id, "method": "otp", **self._client(client)},
            )
            return Login(self._principal(admin, new.session), new.token, new.session)
        reason = "admin_disabled" if outcome is OtpOutcome.OK else outcome.value
        status = await lockouts.failure(LOCKOUT_RULE, lock_key)
        if status.locked:
            await self.codes.discard(name)
        await self._audit(
            f"ip:{client.ip}",
            "admin.otp.failed",
            name,
            {
                "reason": reason,
                "failures": status.failures,
                "locked": status.locked,
                **self._client(client),
            },
        )
        if status.locked:
            await lockouts.ensure_unlocked(LOCKOUT_RULE, lock_key, accept_language)
        raise ApiError(401, "invalid_code", text(INVALID_CODE, accept_language))

    # ------------------------------------------------------------------ sessions

    async def authenticate_token(
        self, token: str, *, client: ClientInfo | None = None
    ) -> AdminPrincipal | None:
        """The admin whose live session ``token`` is, sliding the session's expiry; ``None``
        for anything else (including an admin disabled since: the session ends now)."""
        found = await self.sessions.lookup(token)
        if found is None:
            return None
        session = found.session
        admin = await get_admin(self.db, session.principal_id)
        if admin is None or not admin.active:
            await self.sessions.remove(session)
            await self._audit(
                "system",
                "admin.session.revoked",
                session.name,
                {"session": session.id, "reason": "admin_disabled"},
            )
            return None
        if found.refreshed:
            details: dict[str, Any] = {"session": session.id}
            if client is not None:
                details.update(self._client(client))
            await self._audit(admin.name, "admin.session.refreshed", admin.name, details)
        return self._principal(admin, session)

    async def list_sessions(self, principal: AdminPrincipal) -> list[Session]:
        """The caller's live sessions (none for the API key, which has no account)."""
        if principal.admin_id is None:
            return []
        return await self.sessions.sessions(principal.admin_id)

    async def revoke_session(self, principal: AdminPrincipal, session_id: str) -> bool:
        """End one of the caller's sessions; False when it has no such live session."""
        if principal.admin_id is None:
            return False
        ended = await self.sessions.revoke(principal.admin_id, session_id)
        if ended is None:
            return False
        await self._audit(
            principal.id,
            "admin.session.revoked",
            ended.name,
            {"session": ended.id, "reason": "revoked", "by_session": principal.session_id},
        )
        return True

    async def revoke_all(self, principal: AdminPrincipal) -> list[Session]:
        """End every session of the caller, the current one included."""
        if principal.admin_id is None:
            return []
        ended = await self.sessions.revoke_all(principal.admin_id)
        if ended:
            async with self.db.begin() as conn:
                for session in ended:
                    await self._audit(
                        principal.id,
                        "admin.session.revoked",
                        session.name,
                        {
                            "session": session.id,
                            "reason": "revoke_all",
                            "by_session": principal.session_id,
                        },
                        conn=conn,
                    )
        return ended

    async def logout(self, token: str | None) -> bool:
        """End the session ``token`` names; False when it names no live session."""
        found = await self.sessions.lookup(token, refresh=False) if token else None
        if found is None:
            return False
        session = found.session
        await self.sessions.remove(session)
        await self._audit(
            session.name,
            "admin.session.revoked",
            session.name,
            {"session": session.id, "reason": "logout"},
        )
        return True
