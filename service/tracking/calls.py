"""Calls from a site's phone system (``POST /t/calls``), matched to the phone intents before them.

**The token.** An owner generates the site's calls token (``kc_<site id>_<32 random bytes>``);
it is shown once, and only its SHA-256 is kept, in the site's config (``calls_token``). The
phone system sends it as ``Authorization: Bearer``: the site id in it names the site, the digest
decides (compared in constant time). Generating a new token replaces the old one at once.

**Matching.** A call is matched to the closest ``pending`` phone intent of the site that was
created within ``tracking_call_match_minutes`` before the call and has no call yet (ties on
time: the newest intent). When the phone system names the callee (the number dialled) and some
candidates' targets are that number, the closest of those wins: a site with several numbers
gets the right one. The intent gets ``call_number`` and ``call_at``; its status stays pending
(an owner or editor seals it).

**Every call is stored** (``track_calls``), matched or not: unmatched calls are the site's calls
that no tracked click explains, which the owner wants to see too. One row per (site, caller,
time): a phone system that sends the same call again gets the stored call and its match back
(``duplicate``), and no second intent is matched.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from service.audit import record_audit
from service.db.tables.tracking import sites, track_calls, track_intents
from service.errors import ApiError
from service.tracking.access import require_manage, script_scope
from service.tracking.scope import SiteScope, site_values, where_site
from service.tracking.sites import Site, get_site

TOKEN_PREFIX = "kc_"  # noqa: S105 - a prefix, not a secret
_TOKEN = re.compile(r"^kc_([1-9][0-9]{0,17})_([A-Za-z0-9_-]{43})$")
CONFIG_KEY = "calls_token"
E164_PATTERN = r"^\+[1-9][0-9]{6,14}$"
_NOT_DIGITS = re.compile(r"[^0-9]")


@dataclass(frozen=True, slots=True)
class CallOutcome:
    call: dict[str, Any]
    #: False: this call was stored before (the phone system sent it again).
    new: bool


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def new_calls_token(
    conn: AsyncConnection, scope: SiteScope, site: Site, *, now: datetime
) -> str:
    """A new token for the site's phone system (owners and admins); the old one stops working."""
    require_manage(scope)
    token = f"{TOKEN_PREFIX}{site.id}_{secrets.token_urlsafe(32)}"
    row = (
        await conn.execute(select(sites.c.config).where(sites.c.id == site.id).with_for_update())
    ).first()
    config = dict((row.config if row is not None else None) or {})
    replaced = CONFIG_KEY in config
    config[CONFIG_KEY] = {"sha256": token_digest(token), "created_at": now.isoformat()}
    await conn.execute(update(sites).where(sites.c.id == site.id).values(config=config))
    await record_audit(
        conn,
        actor=scope.actor,
        action="site.calls_token.created",
        subject=f"site:{site.id}",
        details={"replaced": replaced},
        ts=now,
    )
    return token


def _unauthorized() -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        "the calls token is missing or wrong (Authorization: Bearer kc_...)",
        headers={"WWW-Authenticate": 'Bearer realm="kervan-calls"'},
    )


async def site_for_token(conn: AsyncConnection, token: str | None) -> Site:
    """The live site whose calls token ``token`` is; 401 for anything else."""
    match = _TOKEN.match(token or "")
    if match is None:
        raise _unauthorized()
    site = await get_site(conn, int(match.group(1)))
    stored = (site.config.get(CONFIG_KEY) if site is not None else None) or {}
    expected = stored.get("sha256") if isinstance(stored, dict) else None
    if site is None or not isinstance(expected, str):
        raise _unauthorized()
    if not hmac.compare_digest(expected, token_digest(token or "")):
        raise _unauthorized()
    return site


def call_out(row: Any) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "caller": row.caller,
        "callee": row.callee,
        "called_at": row.called_at,
        "duration_seconds": row.duration_seconds,
        "intent_id": None if row.intent_id is None else int(row.intent_id),
        "received_at": row.received_at,
    }


def _digits(value: str) -> str:
    return _NOT_DIGITS.sub("", value)


def _dials(target: str, callee: str) -> bool:
    """Whether a ``tel:`` target is the E.164 ``callee``: the same digits (``+90...``,
    ``0090...``), or a national form the callee's digits end with (``tel:0555 111 22 33`` for
    ``+905551112233``)."""
    raw = target.removeprefix("tel:").strip()
    digits = _digits(raw)
    if raw.startswith("00"):
        digits = digits[2:]
    wanted = _digits(callee)
    national = digits.lstrip("0")
    return digits == wanted or (len(national) >= 7 and wanted.endswith(national))


async def _candidates(
    conn: AsyncConnection, scope: SiteScope, called_at: datetime, window: timedelta
) -> list[Any]:
    query = (
        select(track_intents.c.id, track_intents.c.target, track_intents.c.created_at)
        .where(
            where_site(track_intents, scope),
            track_intents.c.kind == "phone",
            track_intents.c.created_at >= called_at - window,
            track_intents.c.created_at <= called_at,
            track_intents.c.status == "pending",
            track_intents.c.call_at.is_(None),
            track_intents.c.deleted_at.is_(None),
        )
        .order_by(track_intents.c.created_at.desc(), track_intents.c.id.desc())
        .limit(200)
    )
    return list((await conn.execute(query)).all())


async def _match(
    conn: AsyncConnection,
    scope: SiteScope,
    *,
    caller: str,
    callee: str | None,
    called_at: datetime,
    window: timedelta,
    now: datetime,
) -> int | None:
    candidates = await _candidates(conn, scope, called_at, window)
    if callee is not None:
        dialled = [row for row in candidates if _dials(row.target, callee)]
        candidates = dialled + [row for row in candidates if row not in dialled]
    for row in candidates:
        # Conditional: a concurrent call matched this intent first, then the next one is tried.
        taken = await conn.execute(
            update(track_intents)
            .where(
                and_(
                    where_site(track_intents, scope),
                    track_intents.c.id == row.id,
                    track_intents.c.call_at.is_(None),
                    track_intents.c.status == "pending",
                )
            )
            .values(call_number=caller, call_at=called_at, updated_at=now)
        )
        if taken.rowcount == 1:
            return int(row.id)
    return None


async def _stored(conn: AsyncConnection, scope: SiteScope, caller: str, at: datetime) -> Any:
    query = select(track_calls).where(
        where_site(track_calls, scope),
        track_calls.c.caller == caller,
        track_calls.c.called_at == at,
    )
    return (await conn.execute(query)).first()


async def record_call(
    conn: AsyncConnection,
    site: Site,
    *,
    caller: str,
    called_at: datetime,
    callee: str | None,
    duration_seconds: int | None,
    match_minutes: int,
    now: datetime,
) -> CallOutcome:
    """Store the call and match it (see the module's description), in the caller's transaction."""
    scope = script_scope(site)
    existing = await _stored(conn, scope, caller, called_at)
    if existing is not None:
        return CallOutcome(call_out(existing), new=False)
    intent_id = await _match(
        conn,
        scope,
        caller=caller,
        callee=callee,
        called_at=called_at,
        window=timedelta(minutes=match_minutes),
        now=now,
    )
    values = site_values(
        scope,
        caller=caller,
        callee=callee,
        called_at=called_at,
        duration_seconds=duration_seconds,
        intent_id=intent_id,
        received_at=now,
    )
    try:
        await conn.execute(track_calls.insert().values(**values))
    except IntegrityError:
        # The same call sent twice at the same moment: the other request stored (and matched)
        # it; this transaction's match is rolled back with it.
        raise ApiError(
            409, "call_in_progress", "the same call is being stored by another request; retry"
        ) from None
    row = await _stored(conn, scope, caller, called_at)
    return CallOutcome(call_out(row), new=True)


async def list_calls(
    conn: AsyncConnection,
    scope: SiteScope,
    *,
    before: int | None,
    limit: int,
    matched: bool | None,
) -> list[dict[str, Any]]:
    """The site's calls, newest first (a keyset page: ids below ``before``)."""
    query = select(track_calls).where(where_site(track_calls, scope))
    if before is not None:
        query = query.where(track_calls.c.id < before)
    if matched is True:
        query = query.where(track_calls.c.intent_id.is_not(None))
    elif matched is False:
        query = query.where(track_calls.c.intent_id.is_(None))
    rows = await conn.execute(query.order_by(track_calls.c.id.desc()).limit(limit))
    return [call_out(row) for row in rows]
