"""Managing sites (platform admins): add, list, change; and the sites a person belongs to.

A site's ``config`` is a small JSON object of options that features read (plan limits, lead
score weights, the speculation segment). A change merges into it (JSON merge patch, RFC 7386: a
key set to ``null`` is removed). Keys kervan keeps there itself (``calls_token``: the digest of
the phone system's token, ``service/tracking/calls.py``) cannot be set through it and are never
shown; ``calls_token_set`` tells whether one exists.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.errors import NotFound, ValidationFailed
from service.audit import record_audit
from service.db.tables.tracking import site_members, sites
from service.tracking.quota import CONFIG_KEYS as QUOTA_CONFIG_KEYS
from service.tracking.quota import is_limit
from service.tracking.scope import ALL_SITES, Role
from service.tracking.sites import Site, check_domains, check_time_zone, create_site, site_from_row

#: Config keys kervan writes itself: refused in a change, hidden in every answer.
RESERVED_CONFIG_KEYS = frozenset({"calls_token"})
MAX_CONFIG_BYTES = 16 * 1024
LIMIT_CONFIG_KEYS = tuple(QUOTA_CONFIG_KEYS.values())
NAME_MAX_CHARS = 120
#: The rules a request schema cannot state, in the words of their refusals (the API description
#: lists them: ``service.openapi.validation_rules``).
RULE_NAME = f"a site's name is 1-{NAME_MAX_CHARS} printable characters, not only spaces"
RULE_TIME_ZONE = "time_zone is an IANA time zone name"
RULE_CONFIG_KEYS = f"the config keys {sorted(RESERVED_CONFIG_KEYS)} are kept by kervan"
RULE_CONFIG_SIZE = f"a site's config is at most {MAX_CONFIG_BYTES} bytes of JSON"
#: The plan limits (``service.tracking.quota``): an invalid one would silently be the default.
RULE_CONFIG_LIMITS = "config monthly_events and monthly_intents are whole numbers 0..10^12"
SITE_RULES = (RULE_NAME, RULE_TIME_ZONE, RULE_CONFIG_KEYS, RULE_CONFIG_SIZE, RULE_CONFIG_LIMITS)


def check_site_name(name: str) -> str:
    value = " ".join(name.split())
    if not value or len(value) > NAME_MAX_CHARS or not value.isprintable():
        raise ValidationFailed(RULE_NAME)
    return value


def check_zone(name: str) -> str:
    try:
        return check_time_zone(name)
    except ValidationFailed:
        raise ValidationFailed(f"{RULE_TIME_ZONE} ({name[:64]!r} is none)") from None


def check_currency(code: str) -> str:
    value = code.strip().upper()
    if len(value) != 3 or not value.isascii() or not value.isalpha():
        raise ValidationFailed("a currency is a three-letter ISO 4217 code (e.g. TRY, EUR)")
    return value


def check_config(config: dict[str, Any]) -> dict[str, Any]:
    reserved = sorted(RESERVED_CONFIG_KEYS & set(config))
    if reserved:
        raise ValidationFailed(
            f"{RULE_CONFIG_KEYS}: they cannot be set",
            details=[{"field": f"body.config.{k}", "message": "reserved"} for k in reserved],
        )
    if len(orjson.dumps(config)) > MAX_CONFIG_BYTES:
        raise ValidationFailed(RULE_CONFIG_SIZE)
    # ``null`` removes a limit in a change (the default applies again).
    bad_limits = [
        k for k in LIMIT_CONFIG_KEYS if config.get(k) is not None and not is_limit(config[k])
    ]
    if bad_limits:
        raise ValidationFailed(
            RULE_CONFIG_LIMITS,
            details=[{"field": f"body.config.{k}", "message": "not a limit"} for k in bad_limits],
        )
    return config


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386: objects merge key by key, ``null`` removes a key, anything else replaces."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = value
    return merged


def _shown_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config without the keys kervan keeps there itself (answers and the audit log)."""
    return {k: v for k, v in config.items() if k not in RESERVED_CONFIG_KEYS}


def site_out(site: Site, role: Role | None = None) -> dict[str, Any]:
    shown = _shown_config(site.config)
    out: dict[str, Any] = {
        "id": site.id,
        "name": site.name,
        "public_key": site.public_key,
        "domains": list(site.domains),
        "currency": site.currency,
        "time_zone": site.time_zone,
        "config": shown,
        "calls_token_set": "calls_token" in site.config,
        "created_at": site.created_at,
    }
    if role is not None:
        out["role"] = role
    return out


async def add_site(
    conn: AsyncConnection,
    *,
    name: str,
    domains: list[str],
    currency: str,
    time_zone: str,
    config: dict[str, Any] | None,
    now: datetime,
    actor: str,
) -> Site:
    site = await create_site(
        conn,
        name=check_site_name(name),
        domains=domains,
        currency=check_currency(currency),
        time_zone=check_zone(time_zone),
        config=check_config(dict(config or {})),
        now=now,
    )
    await record_audit(
        conn,
        actor=actor,
        action="site.created",
        subject=f"site:{site.id}",
        details={"name": site.name, "domains": list(site.domains)},
        ts=now,
        site_id=site.id,
        after={
            "name": site.name,
            "domains": list(site.domains),
            "currency": site.currency,
            "time_zone": site.time_zone,
            "config": _shown_config(site.config),
        },
    )
    return site


async def list_sites(conn: AsyncConnection, *, after: int = 0, limit: int = 100) -> list[Site]:
    """Live sites by id, ``limit`` after the id ``after`` (a keyset page)."""
    query = (
        select(sites)
        .where(sites.c.deleted_at.is_(None), sites.c.id > after)
        .order_by(sites.c.id)
        .limit(limit)
    )
    return [site_from_row(row) for row in await conn.execute(query)]


async def update_site(
    conn: AsyncConnection,
    site_id: int,
    changes: dict[str, Any],
    *,
    now: datetime,
    actor: str,
) -> Site:
    """Apply ``changes`` (any of name, domains, currency, time_zone, config) to a live site."""
    row = (
        await conn.execute(select(sites).where(sites.c.id == site_id, sites.c.deleted_at.is_(None)))
    ).first()
    if row is None:
        raise NotFound("no such site")
    current = site_from_row(row)
    values: dict[str, Any] = {}
    if changes.get("name") is not None:
        values["name"] = check_site_name(changes["name"])
    if changes.get("domains") is not None:
        values["domains"] = list(check_domains(changes["domains"]))
    if changes.get("currency") is not None:
        values["currency"] = check_currency(changes["currency"])
    if changes.get("time_zone") is not None:
        values["time_zone"] = check_zone(changes["time_zone"])
    if changes.get("config") is not None:
        patch = check_config(changes["config"])
        values["config"] = merge_patch(current.config, patch)
        if len(orjson.dumps(values["config"])) > MAX_CONFIG_BYTES:
            raise ValidationFailed(RULE_CONFIG_SIZE)
    before = {
        "name": current.name,
        "domains": list(current.domains),
        "currency": current.currency,
        "time_zone": current.time_zone,
        "config": current.config,
    }
    changed = {key: value for key, value in values.items() if value != before[key]}
    if not changed:
        return current
    await conn.execute(update(sites).where(sites.c.id == site_id).values(**changed, updated_at=now))
    await record_audit(
        conn,
        actor=actor,
        action="site.updated",
        subject=f"site:{site_id}",
        details={"changed": sorted(changed)},
        ts=now,
        site_id=site_id,
        before={
            key: _shown_config(current.config) if key == "config" else before[key]
            for key in changed
        },
        after={key: _shown_config(v) if key == "config" else v for key, v in changed.items()},
    )
    found = (await conn.execute(select(sites).where(sites.c.id == site_id))).first()
    return site_from_row(found)


async def sites_of_person(conn: AsyncConnection, person_id: int) -> list[tuple[Site, Role]]:
    """The live sites the person is a member of, with their role, by name."""
    # One person's memberships across sites: the one deliberate cross-site read here.
    query = (
        select(site_members.c.site_id, site_members.c.role)
        .where(site_members.c.person_id == person_id)
        .execution_options(**ALL_SITES)
    )
    memberships = (await conn.execute(query)).all()
    if not memberships:
        return []
    roles: dict[int, Role] = {int(r.site_id): r.role for r in memberships}
    rows = await conn.execute(
        select(sites).where(sites.c.id.in_(sorted(roles)), sites.c.deleted_at.is_(None))
    )
    found = [site_from_row(row) for row in rows]
    return sorted(((s, roles[s.id]) for s in found), key=lambda pair: (pair[0].name, pair[0].id))
