"""A site's Google Ads as its members call it (``/t/sites/{site_id}/ads/...``): the connection
(read, connect, disconnect), the upload states, one intent's upload, its retry and the summary.

Each resolves the caller's scope of the site in the same connection or transaction as its work
(``service.tracking.in_site``) and calls ``AdsFacility``; a change that queues uploads wakes the
queue's worker after it commits, so the worker finds the committed jobs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from service.ads.facility import AdsFacility
from service.ads.uploads import list_uploads
from service.runtime import Runtime
from service.tracking.access import Actor
from service.tracking.in_site import change_in_site, read_in_site
from service.tracking.scope import SiteScope

T = TypeVar("T")
#: A call of the facility on the site's scope: ``AdsFacility.summary``, or a lambda.
AdsCall = Callable[[AdsFacility, AsyncConnection, SiteScope], Awaitable[T]]


async def _read(runtime: Runtime, actor: Actor, site_id: int, call: AdsCall[T]) -> T:
    return await read_in_site(
        runtime,
        actor,
        site_id,
        lambda conn, _site, scope: call(runtime.facility(AdsFacility), conn, scope),
    )


async def _change(runtime: Runtime, actor: Actor, site_id: int, call: AdsCall[T]) -> T:
    """``call`` in one transaction; then the worker is woken for the uploads it queued."""
    answer = await change_in_site(
        runtime,
        actor,
        site_id,
        lambda conn, _site, scope: call(runtime.facility(AdsFacility), conn, scope),
    )
    if runtime.queue is not None:
        runtime.queue.wake()
    return answer


async def ads_connection(runtime: Runtime, actor: Actor, site_id: int) -> dict[str, Any]:
    """The connection as members see it (never its token)."""
    return await _read(runtime, actor, site_id, AdsFacility.connection)


async def connect_ads(
    runtime: Runtime,
    actor: Actor,
    site_id: int,
    *,
    customer_id: str,
    conversion_action: str,
    login_customer_id: str | None,
    refresh_token: str | None,
) -> dict[str, Any]:
    return await _change(
        runtime,
        actor,
        site_id,
        lambda ads, conn, scope: ads.connect(
            conn,
            scope,
            customer_id=customer_id,
            conversion_action=conversion_action,
            login_customer_id=login_customer_id,
            refresh_token=refresh_token,
        ),
    )


async def disconnect_ads(runtime: Runtime, actor: Actor, site_id: int) -> None:
    # It queues nothing (pending uploads end): no worker to wake.
    await change_in_site(
        runtime,
        actor,
        site_id,
        lambda conn, _site, scope: runtime.facility(AdsFacility).disconnect(conn, scope),
    )


async def upload_states(
    runtime: Runtime,
    actor: Actor,
    site_id: int,
    *,
    status: str | None,
    reason: str | None,
    before: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    return await read_in_site(
        runtime,
        actor,
        site_id,
        lambda conn, _site, scope: list_uploads(
            conn, scope, status=status, reason=reason, before=before, limit=limit
        ),
    )


async def upload_state(
    runtime: Runtime, actor: Actor, site_id: int, intent_id: int
) -> dict[str, Any]:
    return await _read(
        runtime, actor, site_id, lambda ads, conn, scope: ads.upload(conn, scope, intent_id)
    )


async def retry_ads_upload(
    runtime: Runtime, actor: Actor, site_id: int, intent_id: int
) -> dict[str, Any]:
    return await _change(
        runtime, actor, site_id, lambda ads, conn, scope: ads.retry(conn, scope, intent_id)
    )


async def ads_summary(runtime: Runtime, actor: Actor, site_id: int) -> dict[str, Any]:
    return await _read(runtime, actor, site_id, AdsFacility.summary)
