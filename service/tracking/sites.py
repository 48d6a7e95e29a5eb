"""Sites: the tenants of lead tracking. A site has a public key (what its script sends), the
exact host names its pages come from, a currency, a time zone and a small config."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.errors import ValidationFailed
from service.db.tables.tracking import sites

_HOST = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
    r"(:[0-9]{1,5})?$"
)
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1"})
MAX_DOMAINS = 20


@dataclass(frozen=True, slots=True)
class Site:
    id: int
    public_key: str
    name: str
    domains: tuple[str, ...]
    currency: str
    time_zone: str
    config: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    deleted_at: datetime | None = None

    def allows_origin(self, origin: str | None) -> bool:
        """``Origin`` is exactly ``https://<one of the domains>`` (``http://`` only for a
        loopback host, for local development); no prefix or suffix matching."""
        if not origin:
            return False
        scheme, sep, host = origin.partition("://")
        if not sep or host not in self.domains:
            return False
        if scheme == "https":
            return True
        return scheme == "http" and host.partition(":")[0] in LOOPBACK_HOSTS


def check_domains(domains: list[str]) -> tuple[str, ...]:
    """Lower-case host names (a port allowed), no scheme, path or wildcard."""
    if not domains or len(domains) > MAX_DOMAINS:
        raise ValidationFailed(f"a site has 1 to {MAX_DOMAINS} domains")
    cleaned: list[str] = []
    for domain in domains:
        value = domain.strip().lower()
        if not _HOST.match(value):
            raise ValidationFailed(
                f"{domain!r} is not a host name (no scheme, path or wildcard)",
                details=[{"loc": ["domains"], "msg": "not a host name", "type": "value_error"}],
            )
        if value not in cleaned:
            cleaned.append(value)
    return tuple(cleaned)


def check_time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(f"unknown time zone {name!r}") from None
    return name


def new_public_key() -> str:
    return "st_" + secrets.token_urlsafe(18)


def site_from_row(row: Any) -> Site:
    return Site(
        id=row.id,
        public_key=row.public_key,
        name=row.name,
        domains=tuple(row.domains),
        currency=row.currency,
        time_zone=row.time_zone,
        config=dict(row.config or {}),
        created_at=row.created_at,
        deleted_at=row.deleted_at,
    )


async def create_site(
    conn: AsyncConnection,
    *,
    name: str,
    domains: list[str],
    currency: str,
    time_zone: str,
    now: datetime,
    config: dict[str, Any] | None = None,
) -> Site:
    values = {
        "public_key": new_public_key(),
        "name": name,
        "domains": list(check_domains(domains)),
        "currency": currency.upper(),
        "time_zone": check_time_zone(time_zone),
        "config": config or {},
        "created_at": now,
        "updated_at": now,
    }
    result = await conn.execute(insert(sites).values(**values))
    site_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
    found = await get_site(conn, int(site_id or 0), include_deleted=True)
    assert found is not None
    return found


async def get_site(
    conn: AsyncConnection, site_id: int, *, include_deleted: bool = False
) -> Site | None:
    query = select(sites).where(sites.c.id == site_id)
    if not include_deleted:
        query = query.where(sites.c.deleted_at.is_(None))
    row = (await conn.execute(query)).first()
    return None if row is None else site_from_row(row)


async def site_by_key(conn: AsyncConnection, public_key: str) -> Site | None:
    """The live site with this public key (a deleted site accepts no ingest)."""
    row = (
        await conn.execute(
            select(sites).where(sites.c.public_key == public_key, sites.c.deleted_at.is_(None))
        )
    ).first()
    return None if row is None else site_from_row(row)
