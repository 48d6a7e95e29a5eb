"""One-time login codes: six digits, stored only as a salted HMAC, single use, short-lived.

Codes belong to a *kind* of principal (``"admin"``; site members later) and a name. Issuing a
code replaces the one before it. The code itself exists only in the message that carries it
(``otp_text``): never in the state backend, the audit trail or a log line.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets

import orjson

from core.clock import Clock
from core.i18n import Locale
from service.admins.texts import OTP_MESSAGE
from service.backends.base import KeyValueStore
from service.backends.keys import AUTH_OTP

CODE_DIGITS = 6
CODE_PATTERN = rf"^[0-9]{{{CODE_DIGITS}}}$"
_SALT_BYTES = 16


class OtpOutcome(enum.Enum):
    OK = "ok"
    WRONG = "wrong_code"
    EXPIRED = "expired"
    #: No code outstanding: never requested, already used, or replaced by a newer one.
    MISSING = "no_code"


def derive_otp_key(secret: str) -> bytes:
    """The HMAC key of stored codes, derived from ``cookie_secret`` under a label of its own."""
    return hmac.new(secret.encode(), b"kervan/auth/otp-code", hashlib.sha256).digest()


class OtpCodes:
    def __init__(
        self, kv: KeyValueStore, clock: Clock, *, kind: str, ttl: float, key: bytes
    ) -> None:
        self.kv = kv
        self.clock = clock
        self.kind = kind
        self.ttl = ttl
        self._key = key

    def _store_key(self, name: str) -> str:
        return f"{AUTH_OTP}:{self.kind}:{name}"

    def _digest(self, salt: bytes, name: str, code: str) -> str:
        message = salt + f"{self.kind}\0{name}\0{code}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    async def issue(self, name: str) -> str:
        """A fresh code for ``name`` (replacing any earlier one); only its HMAC is stored."""
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        salt = secrets.token_bytes(_SALT_BYTES)
        record = {
            "salt": salt.hex(),
            "mac": self._digest(salt, name, code),
            "expires": self.clock.now() + self.ttl,
        }
        await self.kv.set(self._store_key(name), orjson.dumps(record), ttl=self.ttl)
        return code

    async def verify(self, name: str, code: str) -> OtpOutcome:
        """Check ``code``; a right one is consumed, so a second use finds no code."""
        key = self._store_key(name)
        raw = await self.kv.get(key)
        if raw is None:
            return OtpOutcome.MISSING
        record = orjson.loads(raw)
        # The backend's TTL only collects garbage; the stored expiry decides, on our clock.
        if self.clock.now() >= float(record["expires"]):
            await self.kv.delete_if_equals(key, raw)
            return OtpOutcome.EXPIRED
        expected = self._digest(bytes.fromhex(record["salt"]), name, code)
        if not hmac.compare_digest(expected, record["mac"]):
            return OtpOutcome.WRONG
        # Whoever deletes this very record used the code: a concurrent verify (or a newer code
        # issued meanwhile) makes the other caller find no code.
        if not await self.kv.delete_if_equals(key, raw):
            return OtpOutcome.MISSING
        return OtpOutcome.OK

    async def discard(self, name: str) -> None:
        await self.kv.delete(self._store_key(name))


def otp_text(*, code: str, language: Locale, ttl_seconds: float) -> str:
    """The Telegram message that delivers ``code``, in the admin's language."""
    minutes = max(1, round(ttl_seconds / 60))
    return OTP_MESSAGE[language].format(code=code, minutes=minutes)
