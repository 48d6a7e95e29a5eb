"""The site script (``GET /t/{site_key}.js``): one file for every site.

The script reads its site key and the API origin from its own URL (``document.currentScript``),
so the bytes are the same for every site and one content hash names them: a strong ETag that
changes exactly when the file does. The key in the path is still checked, so an unknown or
deleted site's page gets a 404 instead of a tracker whose batches would all be refused.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from sqlalchemy.ext.asyncio import AsyncConnection

from service.runtime import Runtime
from service.tracking.sites import site_by_key

SCRIPT_FILE = "kervan-track.js"
MEDIA_TYPE = "text/javascript; charset=utf-8"
#: What ``new_public_key`` mints (``st_`` + 24 url-safe characters), with room to change it.
SITE_KEY_PATTERN = r"^st_[A-Za-z0-9_-]{8,37}$"
_SITE_KEY = re.compile(SITE_KEY_PATTERN)
#: After ``max-age`` a cache may keep answering with the old copy for this long while it
#: revalidates in the background: a visitor never waits for a revalidation.
STALE_WHILE_REVALIDATE = 7 * 86_400


@dataclass(frozen=True, slots=True)
class SiteScript:
    body: bytes
    etag: str


@cache
def site_script() -> SiteScript:
    """The script shipped as package data (``service/static/kervan-track.js``)."""
    body = resources.files("service.static").joinpath(SCRIPT_FILE).read_bytes()
    return SiteScript(body=body, etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"')


def cache_control(max_age: int) -> str:
    return f"public, max-age={max_age}, stale-while-revalidate={STALE_WHILE_REVALIDATE}"


async def serves_site(conn: AsyncConnection, site_key: str) -> bool:
    """Whether ``site_key`` names a live site (a malformed key names none)."""
    if not _SITE_KEY.match(site_key):
        return False
    return await site_by_key(conn, site_key) is not None


async def site_is_served(runtime: Runtime, site_key: str) -> bool:
    """``serves_site`` on a connection of its own (the script route's one call)."""
    async with runtime.db.connect() as conn:
        return await serves_site(conn, site_key)
