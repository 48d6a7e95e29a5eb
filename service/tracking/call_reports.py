"""The calls a site's phone system reports (``POST /t/calls``) and a site's members read.

A phone system is authenticated by the site's calls token (``service.tracking.calls``):
``calls_site`` checks it before the request's body is looked at; ``store_call`` checks it
again in the transaction that stores and matches the call, so a token renewed meanwhile stops
at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from service.runtime import Runtime
from service.tracking.access import Actor
from service.tracking.calls import CallOutcome, list_calls, record_call, site_for_token
from service.tracking.in_site import read_in_site
from service.tracking.sites import Site


async def calls_site(runtime: Runtime, token: str | None) -> Site:
    """The site whose calls token this is; 401 for a missing or wrong one."""
    async with runtime.db.connect() as conn:
        return await site_for_token(conn, token)


async def store_call(
    runtime: Runtime,
    token: str | None,
    *,
    caller: str,
    called_at: datetime,
    callee: str | None,
    duration_seconds: int | None,
    now: datetime,
) -> CallOutcome:
    """Store the call and match it to an intent, in one transaction (a repeat is not stored
    twice: ``CallOutcome.new`` is false)."""
    async with runtime.db.begin() as conn:
        site = await site_for_token(conn, token)
        return await record_call(
            conn,
            site,
            caller=caller,
            called_at=called_at,
            callee=callee,
            duration_seconds=duration_seconds,
            match_minutes=runtime.settings.tracking_call_match_minutes,
            now=now,
        )


async def site_calls(
    runtime: Runtime,
    actor: Actor,
    site_id: int,
    *,
    before: int | None,
    limit: int,
    matched: bool | None,
) -> list[dict[str, Any]]:
    """A site's reported calls, newest first (a keyset page)."""
    return await read_in_site(
        runtime,
        actor,
        site_id,
        lambda conn, _site, scope: list_calls(
            conn, scope, before=before, limit=limit, matched=matched
        ),
    )
