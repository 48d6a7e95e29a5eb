"""A site's Google Ads connection row: read, saved by its owner, paused by the uploader.

The refresh token is only ever written as the cipher's output and never read back out of this
module except by the uploader (``Connection.token_ciphertext``); ``connection_view`` is what
people see.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.db.tables.ads import ads_connections
from service.tracking.scope import SiteScope, site_values, where_site

T = ads_connections
ACTIVE = "active"
PAUSED = "paused"
ConnectionStatus = Literal["active", "paused"]


@dataclass(frozen=True, slots=True)
class Connection:
    site_id: int
    customer_id: str
    conversion_action: str
    login_customer_id: str | None
    token_ciphertext: str
    status: str
    status_reason: str | None
    status_message: str | None
    paused_at: datetime | None
    generation: int
    flush_key: str | None
    connected_by: str
    created_at: datetime
    updated_at: datetime

    @property
    def paused(self) -> bool:
        return self.status == PAUSED


def _connection(row: Any) -> Connection:
    return Connection(
        site_id=int(row.site_id),
        customer_id=row.customer_id,
        conversion_action=row.conversion_action,
        login_customer_id=row.login_customer_id,
        token_ciphertext=row.token_ciphertext,
        status=row.status,
        status_reason=row.status_reason,
        status_message=row.status_message,
        paused_at=row.paused_at,
        generation=int(row.generation),
        flush_key=row.flush_key,
        connected_by=row.connected_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def connection_view(connection: Connection | None) -> dict[str, Any]:
    """What a member reads: never the token, not even encrypted."""
    if connection is None:
        return {
            "connected": False,
            "customer_id": None,
            "conversion_action": None,
            "login_customer_id": None,
            "status": None,
            "status_reason": None,
            "status_message": None,
            "paused_at": None,
            "refresh_token_stored": False,
            "connected_by": None,
            "created_at": None,
            "updated_at": None,
        }
    return {
        "connected": True,
        "customer_id": connection.customer_id,
        "conversion_action": connection.conversion_action,
        "login_customer_id": connection.login_customer_id,
        "status": connection.status,
        "status_reason": connection.status_reason,
        "status_message": connection.status_message,
        "paused_at": connection.paused_at,
        "refresh_token_stored": True,
        "connected_by": connection.connected_by,
        "created_at": connection.created_at,
        "updated_at": connection.updated_at,
    }


async def get_connection(
    conn: AsyncConnection, scope: SiteScope, *, lock: bool = False
) -> Connection | None:
    query = select(T).where(where_site(T, scope))
    if lock and conn.dialect.name != "sqlite":
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return None if row is None else _connection(row)


async def save_connection(
    conn: AsyncConnection,
    scope: SiteScope,
    *,
    customer_id: str,
    conversion_action: str,
    login_customer_id: str | None,
    token_ciphertext: str | None,
    now: datetime,
) -> tuple[Connection, Connection | None]:
    """Create or replace the connection (active again, next generation); ``token_ciphertext``
    None keeps the stored token. Returns the connection and the one it replaced."""
    before = await get_connection(conn, scope, lock=True)
    values = {
        "customer_id": customer_id,
        "conversion_action": conversion_action,
        "login_customer_id": login_customer_id,
        "status": ACTIVE,
        "status_reason": None,
        "status_message": None,
        "paused_at": None,
        "connected_by": scope.actor[:64],
        "updated_at": now,
    }
    if before is None:
        if token_ciphertext is None:
            raise ValueError("a new connection needs a token")
        await conn.execute(
            insert(T).values(
                site_values(
                    scope, **values, token_ciphertext=token_ciphertext, generation=1, created_at=now
                )
            )
        )
    else:
        if token_ciphertext is not None:
            values["token_ciphertext"] = token_ciphertext
        await conn.execute(
            update(T).where(where_site(T, scope)).values(**values, generation=T.c.generation + 1)
        )
    after = await get_connection(conn, scope)
    assert after is not None
    return after, before


async def delete_connection(conn: AsyncConnection, scope: SiteScope) -> Connection | None:
    before = await get_connection(conn, scope, lock=True)
    if before is not None:
        await conn.execute(delete(T).where(where_site(T, scope)))
    return before


async def pause_connection(
    conn: AsyncConnection,
    scope: SiteScope,
    *,
    generation: int,
    reason: str,
    message: str | None,
    now: datetime,
) -> bool:
    """Pause the site's uploads - only the connection the failing request used: a reconnect
    in between (a newer generation) is not paused by its predecessor's failure."""
    result = await conn.execute(
        update(T)
        .where(and_(where_site(T, scope), T.c.generation == generation, T.c.status == ACTIVE))
        .values(
            status=PAUSED,
            status_reason=reason[:80],
            status_message=None if message is None else message[:255],
            paused_at=now,
            updated_at=now,
        )
    )
    return bool(result.rowcount == 1)
