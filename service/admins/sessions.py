"""Login sessions in the state backend, for a *kind* of principal (``"admin"``; site members
later).

A session is named by a bearer token of 32 random bytes that only its holder knows; the backend
keeps the token's SHA-256 (a leaked backend dump opens no session) and a short public id that
lists and revocations use. A session ends after ``idle_ttl`` without use (sliding) and
``max_age`` after login whatever happens. Its last-seen time is written at most once per
``refresh_interval``, so an active session costs one read per request, not one write.

Keys (``service/backends/keys.py``): the session hash under the token's digest, and a hash per
principal from public id to digest, so a principal's sessions are listed and revoked without
scanning the keyspace.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, replace

from core.clock import Clock
from service.backends import Backends
from service.backends.keys import AUTH_SESSION, AUTH_SESSION_INDEX, AUTH_SESSION_REFRESH

TOKEN_BYTES = 32
#: ``secrets.token_urlsafe(32)``: 43 characters of the URL-safe base64 alphabet.
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")
SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{16}$"
MAX_USER_AGENT_CHARS = 256
_FIELDS = ("sid", "pid", "name", "created", "seen", "ip", "ua")


@dataclass(frozen=True, slots=True)
class Session:
    id: str  # public: safe to show and to name in a URL
    principal_id: int
    name: str
    created: float
    seen: float
    ip: str
    user_agent: str
    token_digest: str

    def expires_at(self, idle_ttl: float, max_age: float) -> float:
        return min(self.seen + idle_ttl, self.created + max_age)


@dataclass(frozen=True, slots=True)
class NewSession:
    token: str  # handed to the client once, never stored
    session: Session


@dataclass(frozen=True, slots=True)
class Found:
    session: Session
    #: This lookup moved the session's expiry (at most once per refresh interval).
    refreshed: bool


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _stamp(moment: float) -> bytes:
    return f"{moment:.6f}".encode()


class SessionStore:
    def __init__(
        self,
        backends: Backends,
        clock: Clock,
        *,
        kind: str,
        idle_ttl: float,
        max_age: float,
        refresh_interval: float,
    ) -> None:
        self.kv = backends.kv
        self.hashes = backends.hashes
        self.clock = clock
        self.kind = kind
        self.idle_ttl = idle_ttl
        self.max_age = max_age
        self.refresh_interval = refresh_interval

    def _key(self, digest: str) -> str:
        return f"{AUTH_SESSION}:{self.kind}:{digest}"

    def _index(self, principal_id: int) -> str:
        return f"{AUTH_SESSION_INDEX}:{self.kind}:{principal_id}"

    def expires_at(self, session: Session) -> float:
        return session.expires_at(self.idle_ttl, self.max_age)

    async def create(self, principal_id: int, name: str, *, ip: str, user_agent: str) -> NewSession:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        session = Session(
            id=secrets.token_urlsafe(12),
            principal_id=principal_id,
            name=name,
            created=self.clock.now(),
            seen=self.clock.now(),
            ip=ip,
            user_agent=user_agent[:MAX_USER_AGENT_CHARS],
            token_digest=token_digest(token),
        )
        record = {
            "sid": session.id.encode(),
            "pid": str(principal_id).encode(),
            "name": name.encode(),
            "created": _stamp(session.created),
            "seen": _stamp(session.seen),
            "ip": ip.encode(),
            "ua": session.user_agent.encode(),
        }
        await self.hashes.set(
            self._key(session.token_digest), record, ttl=min(self.idle_ttl, self.max_age)
        )
        # The index outlives every session it lists: each login pushes it to a full max_age.
        await self.hashes.set(
            self._index(principal_id),
            {session.id: session.token_digest.encode()},
            ttl=self.max_age,
        )
        return NewSession(token, session)

    def _parse(self, digest: str, record: dict[str, bytes]) -> Session | None:
        if any(name not in record for name in _FIELDS):
            return None
        try:
            return Session(
                id=record["sid"].decode(),
                principal_id=int(record["pid"]),
                name=record["name"].decode(),
                created=float(record["created"]),
                seen=float(record["seen"]),
                ip=record["ip"].decode(),
                user_agent=record["ua"].decode(errors="replace"),
                token_digest=digest,
            )
        except ValueError:
            return None

    async def _read(self, digest: str) -> Session | None:
        """The live session under ``digest``; a dead or broken record is removed."""
        key = self._key(digest)
        record = await self.hashes.get_all(key)
        if not record:
            return None
        session = self._parse(digest, record)
        if session is None:
            # A refresh that raced a revocation wrote ``seen`` alone into a deleted session:
            # the incomplete record is no session and goes.
            await self.kv.delete(key)
            return None
        if self.clock.now() >= self.expires_at(session):
            # The backend's TTL only collects garbage; expiry is decided here, on our clock.
            await self.remove(session)
            return None
        return session

    async def lookup(self, token: str, *, refresh: bool = True) -> Found | None:
        """The live session ``token`` names; with ``refresh``, its expiry slides forward
        (written at most once per refresh interval, across every process)."""
        if not TOKEN_PATTERN.match(token):
            return None
        digest = token_digest(token)
        session = await self._read(digest)
        if session is None:
            return None
        now = self.clock.now()
        if not refresh or now - session.seen < self.refresh_interval:
            return Found(session, refreshed=False)
        period = int(now // self.refresh_interval)
        marker = f"{AUTH_SESSION_REFRESH}:{self.kind}:{digest}:{period}"
        if not await self.kv.set_if_absent(marker, b"1", ttl=2 * self.refresh_interval):
            return Found(session, refreshed=False)  # another request of this period wrote it
        left = min(self.idle_ttl, session.created + self.max_age - now)
        await self.hashes.set(self._key(digest), {"seen": _stamp(now)}, ttl=left)
        return Found(replace(session, seen=now), refreshed=True)

    async def sessions(self, principal_id: int) -> list[Session]:
        """The principal's live sessions, newest first; index entries of dead ones are pruned."""
        index_key = self._index(principal_id)
        index = await self.hashes.get_all(index_key)
        live: list[Session] = []
        dead: list[str] = []
        for session_id, digest in index.items():
            session = await self._read(digest.decode())
            if session is None or session.principal_id != principal_id:
                dead.append(session_id)
            else:
                live.append(session)
        if dead:
            await self.hashes.delete(index_key, *dead)
        return sorted(live, key=lambda s: (s.created, s.id), reverse=True)

    async def remove(self, session: Session) -> None:
        await self.kv.delete(self._key(session.token_digest))
        await self.hashes.delete(self._index(session.principal_id), session.id)

    async def revoke(self, principal_id: int, session_id: str) -> Session | None:
        """End one of the principal's sessions; ``None`` when it has no such live session."""
        digest = await self.hashes.get(self._index(principal_id), session_id)
        if digest is None:
            return None
        session = await self._read(digest.decode())
        await self.hashes.delete(self._index(principal_id), session_id)
        if session is None or session.principal_id != principal_id:
            return None
        await self.kv.delete(self._key(session.token_digest))
        return session

    async def revoke_all(self, principal_id: int) -> list[Session]:
        """End every session of the principal; the live ones ended are returned."""
        index_key = self._index(principal_id)
        index = await self.hashes.get_all(index_key)
        ended: list[Session] = []
        for digest in index.values():
            session = await self._read(digest.decode())
            if session is not None and session.principal_id == principal_id:
                ended.append(session)
        # Whole keys (the index and the session hashes) go with the key/value store's DEL.
        keys = [self._key(digest.decode()) for digest in index.values()]
        await self.kv.delete(*keys, index_key)
        return sorted(ended, key=lambda s: (s.created, s.id), reverse=True)
