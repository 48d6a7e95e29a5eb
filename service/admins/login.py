"""``OtpLogin``: login by one-time code and the sessions it opens, for one *kind* of account.

The shared part of admin login (``service/admins/facility.py``: kind ``admin``, accounts in
``admins``, codes over Telegram) and of site people's login (``service/tracking/people_auth.py``:
kind ``person``, accounts in ``people``, codes over Telegram or e-mail). A subclass says how to
find an account by its login name and by id, and how a code reaches it; everything else is here
and behaves the same for every kind:

- requesting a code answers the same whether or not the account exists or may log in, so the
  API names no accounts; it is refused (429) for any name alike while the name is locked out;
- a wrong, expired or used code and an unknown or disabled account get one answer (401
  ``invalid_code``); failures count toward the ``otp`` lockout per ``<kind>:<name>``, kept in the
  rate limiter's backend, which fails closed (when it cannot be asked, nobody logs in);
- every code request, failed attempt, session created, refreshed and revoked is an audit row
  (``<kind>.otp.*``, ``<kind>.session.*``, subject ``<kind>:<name>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from core.clock import Clock
from core.ratelimit.texts import text
from service.admins.otp import OtpCodes, OtpOutcome, derive_otp_key
from service.admins.sessions import Session, SessionStore
from service.admins.texts import INVALID_CODE
from service.audit import record_audit
from service.auth import ClientInfo
from service.db.types import from_timestamp
from service.errors import ApiError
from service.ratelimit.lockouts import Lockouts
from service.runtime import Runtime

LOCKOUT_RULE = "otp"


class LoginAccount(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def active(self) -> bool: ...


A = TypeVar("A", bound=LoginAccount)


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
class Verified(Generic[A]):
    """A code accepted: the account and its new session (the token is handed out once)."""

    account: A
    token: str
    session: Session


class OtpLogin(Generic[A]):
    """Codes and sessions of one kind of account (``kind`` is set by the subclass)."""

    kind: str

    def __init__(self, runtime: Runtime, *, cookie_name: str) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.db = runtime.db
        self.clock: Clock = runtime.clock
        self.codes = OtpCodes(
            runtime.backends.kv,
            runtime.clock,
            kind=self.kind,
            ttl=settings.admin_otp_ttl_seconds,
            key=derive_otp_key(settings.cookie_secret),
        )
        self.sessions = SessionStore(
            runtime.backends,
            runtime.clock,
            kind=self.kind,
            idle_ttl=settings.admin_session_ttl_seconds,
            max_age=settings.admin_session_max_age_seconds,
            refresh_interval=settings.admin_session_refresh_seconds,
        )
        self.cookie = SessionCookie(
            name=cookie_name,
            # Only where kervan is reached over TLS (HSTS): a Secure cookie never rides plain http.
            secure=settings.env == "production",
            max_age=settings.admin_session_max_age_seconds,
        )

    # ------------------------------------------------------------------ what a kind says

    async def find_account(self, name: str) -> A | None:
        """The account whose login name is ``name`` (``None`` when there is none)."""
        raise NotImplementedError

    async def get_account(self, account_id: int) -> A | None:
        raise NotImplementedError

    def login_name(self, account: A) -> str:
        """What the account types to log in (and what codes and lockouts are keyed by)."""
        raise NotImplementedError

    def actor(self, account_id: int, login_name: str) -> str:
        """How audit rows name the account when it acts."""
        return login_name

    def delivery_channel(self, account: A) -> str | None:
        """How a code would reach the account now (``telegram``, ``email``); ``None`` when no
        channel is configured for it (nothing is then issued or sent)."""
        raise NotImplementedError

    async def send_code(self, account: A, code: str, channel: str) -> None:
        """Queue the message carrying ``code`` on ``channel``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers

    def lockouts(self) -> Lockouts:
        limiter = self.runtime.ratelimiter
        if limiter is None:
            raise RuntimeError("the rate limiter is not set up (service/ratelimit/feature.py)")
        return limiter.lockouts

    def lock_key(self, name: str) -> str:
        return f"{self.kind}:{name}"

    def now(self) -> datetime:
        return from_timestamp(self.clock.now())

    def expires_at(self, session: Session) -> float:
        return self.sessions.expires_at(session)

    async def audit(
        self,
        actor: str,
        action: str,
        name: str,
        details: dict[str, Any],
        *,
        conn: AsyncConnection | None = None,
    ) -> None:
        """An audit row ``<kind>.<action>`` about the account named ``name``."""
        if conn is not None:
            await record_audit(
                conn,
                actor=actor,
                action=f"{self.kind}.{action}",
                subject=f"{self.kind}:{name}",
                details=details,
                ts=self.now(),
            )
            return
        async with self.db.begin() as own:
            await self.audit(actor, action, name, details, conn=own)

    @staticmethod
    def client_details(client: ClientInfo) -> dict[str, str]:
        return {"ip": client.ip, "user_agent": client.user_agent[:256]}

    # ------------------------------------------------------------------ one-time codes

    async def request_code(
        self, name: str, *, client: ClientInfo, accept_language: str | None = None
    ) -> None:
        """Send a login code to ``name`` when it is an enabled account; the same (nothing)
        either way. Refused with 429 while ``name`` is locked out, for any name alike."""
        await self.lockouts().ensure_unlocked(LOCKOUT_RULE, self.lock_key(name), accept_language)
        account = await self.find_account(name)
        channel = self.delivery_channel(account) if account is not None and account.active else None
        if account is not None and channel is not None:
            await self.send_code(account, await self.codes.issue(name), channel)
        sent = channel is not None
        await self.audit(
            f"ip:{client.ip}",
            "otp.requested",
            name,
            {**self.client_details(client), "sent": sent, "channel": channel},
        )

    async def verify(
        self,
        name: str,
        code: str,
        *,
        client: ClientInfo,
        accept_language: str | None = None,
    ) -> Verified[A]:
        """A new session for ``name`` when ``code`` is its outstanding code.

        Refused with 401 ``invalid_code`` otherwise (one answer for a wrong, expired or used
        code and for an unknown or disabled account), and with 429 ``locked_out`` once the
        failures lock the name; the locking failure also discards the outstanding code.
        """
        lockouts = self.lockouts()
        lock_key = self.lock_key(name)
        await lockouts.ensure_unlocked(LOCKOUT_RULE, lock_key, accept_language)
        outcome = await self.codes.verify(name, code)
        account = await self.find_account(name) if outcome is OtpOutcome.OK else None
        if account is not None and account.active:
            await lockouts.success(LOCKOUT_RULE, lock_key)
            login_name = self.login_name(account)
            new = await self.sessions.create(
                account.id, login_name, ip=client.ip, user_agent=client.user_agent
            )
            await self.audit(
                self.actor(account.id, login_name),
                "session.created",
                login_name,
                {"session": new.session.id, "method": "otp", **self.client_details(client)},
            )
            return Verified(account, new.token, new.session)
        reason = f"{self.kind}_disabled" if outcome is OtpOutcome.OK else outcome.value
        status = await lockouts.failure(LOCKOUT_RULE, lock_key)
        if status.locked:
            await self.codes.discard(name)
        await self.audit(
            f"ip:{client.ip}",
            "otp.failed",
            name,
            {
                "reason": reason,
                "failures": status.failures,
                "locked": status.locked,
                **self.client_details(client),
            },
        )
        if status.locked:
            await lockouts.ensure_unlocked(LOCKOUT_RULE, lock_key, accept_language)
        raise ApiError(401, "invalid_code", text(INVALID_CODE, accept_language))

    # ------------------------------------------------------------------ sessions

    async def authenticate(
        self, token: str, *, client: ClientInfo | None = None
    ) -> tuple[A, Session] | None:
        """The account whose live session ``token`` is, sliding the session's expiry; ``None``
        for anything else (an account disabled since: the session ends now)."""
        found = await self.sessions.lookup(token)
        if found is None:
            return None
        session = found.session
        account = await self.get_account(session.principal_id)
        if account is None or not account.active:
            await self.sessions.remove(session)
            await self.audit(
                "system",
                "session.revoked",
                session.name,
                {"session": session.id, "reason": f"{self.kind}_disabled"},
            )
            return None
        if found.refreshed:
            details: dict[str, Any] = {"session": session.id}
            if client is not None:
                details.update(self.client_details(client))
            actor = self.actor(account.id, session.name)
            await self.audit(actor, "session.refreshed", session.name, details)
        return account, session

    async def revoke_one(
        self, account_id: int, session_id: str, *, actor: str, by_session: str | None
    ) -> bool:
        """End one of the account's sessions; False when it has no such live session."""
        ended = await self.sessions.revoke(account_id, session_id)
        if ended is None:
            return False
        await self.audit(
            actor,
            "session.revoked",
            ended.name,
            {"session": ended.id, "reason": "revoked", "by_session": by_session},
        )
        return True

    async def revoke_every(
        self, account_id: int, *, actor: str, by_session: str | None
    ) -> list[Session]:
        """End every session of the account, the current one included."""
        ended = await self.sessions.revoke_all(account_id)
        if ended:
            async with self.db.begin() as conn:
                for session in ended:
                    await self.audit(
                        actor,
                        "session.revoked",
                        session.name,
                        {
                            "session": session.id,
                            "reason": "revoke_all",
                            "by_session": by_session,
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
        actor = self.actor(session.principal_id, session.name)
        await self.audit(
            actor, "session.revoked", session.name, {"session": session.id, "reason": "logout"}
        )
        return True
