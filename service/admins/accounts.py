"""Admin accounts in the database: add, list, find, disable.

Names are short lower-case handles (``[a-z0-9._-]{2,64}``): they appear in audit rows, CRM
notes and rate-limit keys as the admin's identity, so two names that a database, a log reader
or a person could confuse are impossible by construction. ``api-key`` and ``system`` are
taken by the machine principal and the system actor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select

from core.errors import Conflict, ValidationFailed
from core.i18n import SUPPORTED_LOCALES, Locale
from service.audit import record_audit
from service.db import Database
from service.db.tables.admins import admins

NAME_PATTERN = r"^[a-z0-9._-]{2,64}$"
#: Telegram chat ids are integers (negative for groups and channels) or a public @username.
CHAT_ID_PATTERN = r"^(-?[0-9]{1,20}|@[A-Za-z0-9_]{5,32})$"
RESERVED_NAMES = frozenset({"api-key", "system"})
_NAME = re.compile(NAME_PATTERN)
_CHAT_ID = re.compile(CHAT_ID_PATTERN)


@dataclass(frozen=True, slots=True)
class Admin:
    id: int
    name: str
    telegram_chat_id: str
    language: Locale
    disabled_at: datetime | None
    created_at: datetime

    @property
    def active(self) -> bool:
        return self.disabled_at is None


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValidationFailed(
            "admin names are 2-64 characters of a-z, 0-9, '.', '_' and '-'",
            details={"name": name[:80]},
        )
    if name in RESERVED_NAMES:
        raise ValidationFailed(f"the admin name {name!r} is reserved", details={"name": name})
    return name


def check_chat_id(chat_id: str) -> str:
    if not _CHAT_ID.match(chat_id):
        raise ValidationFailed(
            "a Telegram chat id is an integer (e.g. 123456789 or -1001234567890) or @username",
            details={"telegram_chat_id": chat_id[:80]},
        )
    return chat_id


def check_language(language: str) -> Locale:
    if language not in SUPPORTED_LOCALES:
        raise ValidationFailed(
            f"language must be one of {', '.join(SUPPORTED_LOCALES)}",
            details={"language": language[:16]},
        )
    return language


def _admin(row: Any) -> Admin:
    return Admin(
        id=int(row.id),
        name=row.name,
        telegram_chat_id=row.telegram_chat_id,
        language=check_language(row.language),
        disabled_at=row.disabled_at,
        created_at=row.created_at,
    )


async def add_admin(
    db: Database,
    *,
    name: str,
    telegram_chat_id: str,
    language: str,
    now: datetime,
    actor: str,
) -> Admin:
    """Create an account (audited); ``Conflict`` when the name is taken."""
    check_name(name)
    check_chat_id(telegram_chat_id)
    locale = check_language(language)
    try:
        async with db.begin() as conn:
            result = await conn.execute(
                admins.insert().values(
                    name=name,
                    telegram_chat_id=telegram_chat_id,
                    language=locale,
                    disabled_at=None,
                    created_at=now,
                )
            )
            primary_key = result.inserted_primary_key
            assert primary_key is not None
            admin_id = int(primary_key[0])
            await record_audit(
                conn,
                actor=actor,
                action="admin.account.created",
                subject=f"admin:{name}",
                details={"id": admin_id, "language": locale},
                ts=now,
            )
    except Conflict:
        raise Conflict(f"an admin named {name!r} already exists", details={"name": name}) from None
    return Admin(admin_id, name, telegram_chat_id, locale, None, now)


async def list_admins(db: Database) -> list[Admin]:
    async with db.connect() as conn:
        rows = (await conn.execute(select(admins).order_by(admins.c.name))).all()
    return [_admin(row) for row in rows]


async def find_admin(db: Database, name: str) -> Admin | None:
    async with db.connect() as conn:
        row = (await conn.execute(select(admins).where(admins.c.name == name))).first()
    return None if row is None else _admin(row)


async def get_admin(db: Database, admin_id: int) -> Admin | None:
    async with db.connect() as conn:
        row = (await conn.execute(select(admins).where(admins.c.id == admin_id))).first()
    return None if row is None else _admin(row)


async def disable_admin(db: Database, name: str, *, now: datetime, actor: str) -> Admin | None:
    """Disable an account (audited); its sessions stop working at their next request.

    ``None`` when there is no such admin; disabling twice keeps the first time.
    """
    async with db.begin() as conn:
        row = (await conn.execute(select(admins).where(admins.c.name == name))).first()
        if row is None:
            return None
        if row.disabled_at is not None:
            return _admin(row)
        await conn.execute(admins.update().where(admins.c.id == row.id).values(disabled_at=now))
        await record_audit(
            conn,
            actor=actor,
            action="admin.account.disabled",
            subject=f"admin:{name}",
            details={"id": int(row.id)},
            ts=now,
        )
    return replace(_admin(row), disabled_at=now)
