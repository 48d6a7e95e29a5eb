"""``Idempotency-Key`` on ``POST /t/sync``: the same key with the same body replays the first
answer; with another body it is refused (422 ``idempotency_key_reused``).

The answer is stored in the batch's own transaction, so it exists exactly when the batch's
events do. Two requests with one key at the same moment both run; their events are stored once
by the dedup table, and the second answers them as duplicates.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from service.db.tables.tracking import track_idempotency
from service.db.upsert import upsert_stmt
from service.errors import ApiError
from service.tracking.scope import SiteScope, site_values, where_site

KEY_PATTERN = r"^[\x21-\x7e]{1,128}$"
_KEY = re.compile(KEY_PATTERN)
_I = track_idempotency


@dataclass(frozen=True, slots=True)
class Replay:
    status: int
    body: Any


@dataclass(frozen=True, slots=True)
class Found:
    replay: Replay | None
    #: An answer older than the replay window is stored under the key (replaced on store).
    expired: bool = False


def check_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not _KEY.fullmatch(key):
        raise ApiError(
            422,
            "validation_failed",
            "Idempotency-Key must be 1-128 visible ASCII characters",
            [{"field": "header.Idempotency-Key", "message": "1-128 visible ASCII characters"}],
        )
    return key


def request_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


async def lookup(
    conn: AsyncConnection, scope: SiteScope, key: str, digest: str, not_before: datetime
) -> Found:
    """The stored answer for ``key`` if not older than ``not_before``; a key used with another
    body is refused."""
    row = (
        await conn.execute(
            select(_I.c.request_hash, _I.c.status, _I.c.body, _I.c.created_at).where(
                where_site(_I, scope), _I.c.key == key
            )
        )
    ).first()
    if row is None:
        return Found(None)
    if row.created_at < not_before:
        return Found(None, expired=True)
    if row.request_hash != digest:
        raise ApiError(
            422,
            "idempotency_key_reused",
            "this Idempotency-Key was used with another body; use a new key per batch",
        )
    return Found(Replay(int(row.status), row.body))


async def remember(
    conn: AsyncConnection,
    dialect: str,
    scope: SiteScope,
    key: str,
    digest: str,
    body: Any,
    now: datetime,
    *,
    replace_before: datetime | None = None,
) -> None:
    """Store the answer. An expired one under the same key (older than ``replace_before``)
    gives way; a live one (a request with the same key that committed first) is kept."""
    if replace_before is not None:
        await conn.execute(
            delete(_I).where(
                where_site(_I, scope), _I.c.key == key, _I.c.created_at < replace_before
            )
        )
    await conn.execute(
        upsert_stmt(
            dialect,
            _I,
            site_values(scope, key=key, request_hash=digest, status=200, body=body, created_at=now),
            index_elements=["site_id", "key"],
        )
    )
