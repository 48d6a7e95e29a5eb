"""Who is on the support desk: customers (anonymous, resumable) and admins (by session).

A customer is created by its first ``hello`` and gets a resume token; only the token's SHA-256
is stored, pointing at the person, so a leaked state backend does not leak live tokens. The
person record (name, language, role) is what other processes show as the peer's name.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import orjson

from service.backends import Backends
from service.backends.keys import SUPPORT_PERSON, SUPPORT_RESUME


@dataclass
class Person:
    id: str
    role: str  # customer | admin
    name: str
    language: str
    #: The admin's account id, for admins.
    admin_id: str | None = None

    def record(self) -> bytes:
        return orjson.dumps({"role": self.role, "name": self.name, "language": self.language})


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_customer_id() -> str:
    return "cu_" + secrets.token_hex(10)


def admin_person_id(admin_id: str) -> str:
    return f"ad_{admin_id}"


class People:
    def __init__(self, backends: Backends, *, resume_ttl: float) -> None:
        self._backends = backends
        self._ttl = resume_ttl

    async def save(self, person: Person) -> None:
        await self._backends.kv.set(f"{SUPPORT_PERSON}:{person.id}", person.record(), ttl=self._ttl)

    async def names(self, ids: list[str]) -> dict[str, str]:
        if not ids:
            return {}
        found = await self._backends.kv.get_many([f"{SUPPORT_PERSON}:{i}" for i in ids])
        names: dict[str, str] = {}
        for person_id, raw in zip(ids, found, strict=True):
            names[person_id] = orjson.loads(raw)["name"] if raw else person_id
        return names

    async def get(self, person_id: str) -> Person | None:
        raw = await self._backends.kv.get(f"{SUPPORT_PERSON}:{person_id}")
        if raw is None:
            return None
        record = orjson.loads(raw)
        return Person(
            id=person_id, role=record["role"], name=record["name"], language=record["language"]
        )

    async def new_customer(self, name: str, language: str) -> tuple[Person, str]:
        person = Person(id=new_customer_id(), role="customer", name=name, language=language)
        token = secrets.token_urlsafe(32)
        await self._backends.kv.set(
            f"{SUPPORT_RESUME}:{token_hash(token)}", person.id.encode(), ttl=self._ttl
        )
        await self.save(person)
        return person, token

    async def resume_customer(
        self, token: str, *, name: str | None, language: str | None
    ) -> Person | None:
        """The customer the token names, its TTL renewed; None when unknown or expired."""
        key = f"{SUPPORT_RESUME}:{token_hash(token)}"
        found = await self._backends.kv.get(key)
        if found is None:
            return None
        person_id = found.decode()
        raw = await self._backends.kv.get(f"{SUPPORT_PERSON}:{person_id}")
        record = orjson.loads(raw) if raw else {}
        person = Person(
            id=person_id,
            role="customer",
            name=name or record.get("name") or person_id,
            language=language or record.get("language") or "tr",
        )
        await self._backends.kv.set(key, found, ttl=self._ttl)
        await self.save(person)
        return person
