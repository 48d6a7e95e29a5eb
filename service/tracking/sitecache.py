"""Sites by public key and allowed origins, held in memory for a few seconds.

Every batch names its site; reading the row each time would cost a round trip per batch. A
site's change (domains, config, deletion) reaches the ingest within ``ttl`` seconds in every
process, at once in the process that made it (``forget``).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from sqlalchemy import select

from core.clock import Clock
from service.db import Database
from service.db.tables.tracking import sites
from service.tracking.sites import Site, site_by_key

DEFAULT_TTL_SECONDS = 10.0
CAPACITY = 10_000


class SiteCache:
    def __init__(self, db: Database, clock: Clock, ttl: float = DEFAULT_TTL_SECONDS) -> None:
        self._db = db
        self._clock = clock
        self.ttl = ttl
        self._sites: OrderedDict[str, tuple[Site | None, float]] = OrderedDict()
        self._hosts: tuple[frozenset[str], float] | None = None
        self._hosts_lock = asyncio.Lock()

    async def by_key(self, public_key: str) -> Site | None:
        """The live site with this key (``None``: unknown or deleted; remembered too)."""
        now = self._clock.monotonic()
        held = self._sites.get(public_key)
        if held is not None and held[1] > now:
            return held[0]
        async with self._db.connect() as conn:
            site = await site_by_key(conn, public_key)
        self._sites[public_key] = (site, now + self.ttl)
        self._sites.move_to_end(public_key)
        while len(self._sites) > CAPACITY:
            self._sites.popitem(last=False)
        return site

    def forget(self, public_key: str | None = None) -> None:
        """Drop a site (every site with no key) so its next batch reads it again."""
        if public_key is None:
            self._sites.clear()
            self._hosts = None
        else:
            self._sites.pop(public_key, None)
            self._hosts = None

    async def any_site_allows(self, origin: str | None) -> bool:
        """Whether some live site allows ``origin`` (a CORS preflight names no site)."""
        if not origin:
            return False
        hosts = await self._all_hosts()
        probe = Site(0, "", "", tuple(hosts), "", "")
        return probe.allows_origin(origin)

    async def _all_hosts(self) -> frozenset[str]:
        held = self._hosts
        if held is not None and held[1] > self._clock.monotonic():
            return held[0]
        async with self._hosts_lock:
            held = self._hosts
            if held is not None and held[1] > self._clock.monotonic():
                return held[0]
            async with self._db.connect() as conn:
                rows = await conn.execute(
                    select(sites.c.domains).where(sites.c.deleted_at.is_(None))
                )
                hosts = frozenset(str(d) for row in rows for d in (row.domains or ()))
            self._hosts = (hosts, self._clock.monotonic() + self.ttl)
            return hosts
