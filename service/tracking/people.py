"""People: the accounts that sign in to sites' dashboards (``people``), by e-mail address.

A person logs in with a one-time code (``service/tracking/people_auth.py``) sent to their
Telegram chat when they have one, else by e-mail. The address is the login name: stored
lower-case, so ``Ayse@Example.com`` and ``ayse@example.com`` are one person. Every function runs
in the caller's connection, so an invitation creates the person and the membership together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from core.errors import Conflict, ValidationFailed
from core.i18n import Locale
from service.admins.accounts import check_chat_id, check_language
from service.audit import record_audit
from service.db.tables.tracking import people

#: An RFC 5322 dot-atom-ish local part of ASCII ``atext`` and a host name with a dot: what people
#: type, not the RFC in full (quoted local parts, IP literals and non-ASCII are refused). ASCII
#: only, so the same pattern means the same in the API description (ECMA regex) and here.
EMAIL_PATTERN = (
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}"
    r"@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
EMAIL_MAX_CHARS = 191
NAME_MAX_CHARS = 120
_EMAIL = re.compile(EMAIL_PATTERN)
#: The rule a request schema cannot state, in the words of its refusal.
RULE_PERSON_NAME = f"a person's name is 1-{NAME_MAX_CHARS} printable characters, not only spaces"


@dataclass(frozen=True, slots=True)
class Person:
    id: int
    email: str
    name: str
    language: Locale
    telegram_chat_id: str | None
    disabled_at: datetime | None
    created_at: datetime

    @property
    def active(self) -> bool:
        return self.disabled_at is None

    @property
    def label(self) -> str:
        """How audit rows and ``sealed_by`` name the person."""
        return f"person:{self.id}"


def check_email(email: str) -> str:
    """The address lower-cased; ``ValidationFailed`` for anything that is not one."""
    value = email.strip().lower()
    if len(value) > EMAIL_MAX_CHARS or not _EMAIL.match(value):
        raise ValidationFailed(
            "not an e-mail address",
            details=[{"field": "email", "message": "not an e-mail address", "type": "value_error"}],
        )
    return value


def check_person_name(name: str) -> str:
    value = " ".join(name.split())
    if not value or len(value) > NAME_MAX_CHARS or not value.isprintable():
        raise ValidationFailed(RULE_PERSON_NAME)
    return value


def _person(row: Any) -> Person:
    return Person(
        id=int(row.id),
        email=row.email,
        name=row.name,
        language=check_language(row.language),
        telegram_chat_id=row.telegram_chat_id,
        disabled_at=row.disabled_at,
        created_at=row.created_at,
    )


async def add_person(
    conn: AsyncConnection,
    *,
    email: str,
    name: str,
    language: str,
    now: datetime,
    actor: str,
    telegram_chat_id: str | None = None,
) -> Person:
    """Create a person (audited); ``Conflict`` when the address is taken."""
    address = check_email(email)
    clean_name = check_person_name(name)
    locale = check_language(language)
    chat_id = check_chat_id(telegram_chat_id) if telegram_chat_id else None
    values = {
        "email": address,
        "name": clean_name,
        "language": locale,
        "telegram_chat_id": chat_id,
        "disabled_at": None,
        "created_at": now,
    }
    if await find_person(conn, address) is not None:
        raise Conflict(f"a person with the address {address!r} exists", details={"email": address})
    try:
        result = await conn.execute(insert(people).values(**values))
    except IntegrityError:  # a concurrent insert of the same address
        raise Conflict(
            f"a person with the address {address!r} exists", details={"email": address}
        ) from None
    primary_key = result.inserted_primary_key
    assert primary_key is not None
    person_id = int(primary_key[0])
    await record_audit(
        conn,
        actor=actor,
        action="person.created",
        subject=f"person:{person_id}",
        details={"language": locale, "telegram": chat_id is not None},
        ts=now,
    )
    return Person(
        id=person_id,
        email=address,
        name=clean_name,
        language=locale,
        telegram_chat_id=chat_id,
        disabled_at=None,
        created_at=now,
    )


async def find_person(conn: AsyncConnection, email: str) -> Person | None:
    """The person with this address (any case); ``None`` for no such person or no address."""
    try:
        address = check_email(email)
    except ValidationFailed:
        return None
    row = (await conn.execute(select(people).where(people.c.email == address))).first()
    return None if row is None else _person(row)


async def get_person(conn: AsyncConnection, person_id: int) -> Person | None:
    row = (await conn.execute(select(people).where(people.c.id == person_id))).first()
    return None if row is None else _person(row)


async def people_by_id(conn: AsyncConnection, ids: list[int]) -> dict[int, Person]:
    if not ids:
        return {}
    rows = await conn.execute(select(people).where(people.c.id.in_(sorted(set(ids)))))
    return {int(row.id): _person(row) for row in rows}


async def list_people(conn: AsyncConnection) -> list[Person]:
    rows = await conn.execute(select(people).order_by(people.c.email))
    return [_person(row) for row in rows]


async def disable_person(
    conn: AsyncConnection, person: Person, *, now: datetime, actor: str
) -> Person:
    """Disable a person (audited): their sessions end at their next request."""
    if person.disabled_at is not None:
        return person
    await conn.execute(update(people).where(people.c.id == person.id).values(disabled_at=now))
    await record_audit(
        conn, actor=actor, action="person.disabled", subject=person.label, details={}, ts=now
    )
    return Person(
        id=person.id,
        email=person.email,
        name=person.name,
        language=person.language,
        telegram_chat_id=person.telegram_chat_id,
        disabled_at=now,
        created_at=person.created_at,
    )
