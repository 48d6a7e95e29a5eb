"""The people helper's test rig: a started app on a manual clock, over the in-process backends
with SQLite and over the real Redis with the real MariaDB; sites made through the admin API,
people signed in through the real OTP flow (codes read from the queued messages), intents
written as the ingest writes them.

Test modules take the fixtures with ``from tests.tracking.people_rig import rig, stack``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select

from core.clock import ManualClock
from service.db import Database
from service.db.tables.foundation import audit_events
from service.db.tables.tracking import track_intents, track_sessions
from service.db.types import from_timestamp
from service.runtime import Runtime
from service.settings import Settings
from service.tracking.people import Person, add_person
from tests.conftest import _clear_tables, running_client

ADMIN_KEY = "test-admin-key"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
GENEROUS_OTP_POLICIES = "otp.verify=100000/minute burst 100000; otp.send=100000/minute burst 100000"
START = 1_780_000_000.0
_CODE = re.compile(r"\b(\d{6})\b")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Rig:
    client: httpx.AsyncClient
    clock: ManualClock
    kind: str  # "memory-sqlite" or "redis-mariadb"

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.client.app.state.runtime  # type: ignore[attr-defined]
        return runtime

    @property
    def db(self) -> Database:
        return self.runtime.db

    def now(self) -> datetime:
        return from_timestamp(self.clock.now())

    async def jobs(self, queue: str) -> list[dict[str, Any]]:
        """The payloads queued on ``queue`` since the last call (claimed here: no worker runs)."""
        runner = self.runtime.queue
        assert runner is not None
        relay = getattr(runner, "relay", None)
        if relay is not None:  # Redis: jobs enqueued in a transaction wait in the SQL outbox
            await relay(worker_id="people-test")
        claimed = await runner.claim([queue], 100, worker_id="people-test")
        for job in claimed:
            await runner.complete(job)
        return [job.payload for job in claimed]

    async def person(
        self, email: str, *, chat_id: str | None = "4242", name: str = "P", language: str = "en"
    ) -> Person:
        async with self.db.begin() as conn:
            return await add_person(
                conn,
                email=email,
                name=name,
                language=language,
                telegram_chat_id=chat_id,
                now=self.now(),
                actor="test",
            )

    async def site(self, name: str = "Site", **fields: Any) -> dict[str, Any]:
        host = "".join(c for c in name.lower() if c.isascii() and c.isalnum()) or "site"
        body = {
            "name": name,
            "domains": [f"{host}.example"],
            "currency": "TRY",
            "time_zone": "Europe/Istanbul",
            **fields,
        }
        answer = await self.client.post("/admin/sites", json=body, headers=ADMIN)
        assert answer.status_code == 201, answer.text
        found: dict[str, Any] = answer.json()
        return found

    async def member(self, site_id: int, email: str, role: str) -> dict[str, Any]:
        answer = await self.client.post(
            f"/t/sites/{site_id}/members", json={"email": email, "role": role}, headers=ADMIN
        )
        assert answer.status_code == 201, answer.text
        found: dict[str, Any] = answer.json()
        return found

    async def request_code(self, email: str, queue: str = "telegram") -> str:
        answer = await self.client.post("/t/auth/otp/request", json={"email": email})
        assert answer.status_code == 202, answer.text
        payloads = await self.jobs(queue)
        assert len(payloads) == 1, payloads
        found = _CODE.search(payloads[0]["text"])
        assert found is not None, payloads[0]
        return found.group(1)

    async def login(self, email: str, queue: str = "telegram") -> str:
        """A person's session token (the real flow: request, read the code, verify)."""
        code = await self.request_code(email, queue)
        answer = await self.client.post("/t/auth/otp/verify", json={"email": email, "code": code})
        assert answer.status_code == 200, answer.text
        # Tests choose per request how they authenticate; the jar would add the cookie to all.
        self.client.cookies.clear()
        token: str = answer.json()["token"]
        return token

    async def signed_in(self, site_id: int, email: str, role: str) -> dict[str, str]:
        """A new member of the site, signed in: their Bearer header."""
        await self.person(email)
        await self.member(site_id, email, role)
        return bearer(await self.login(email))

    async def tracking_session(self, site_id: int, visitor: str = "v_visitor00000001") -> int:
        now = self.now()
        async with self.db.begin() as conn:
            result = await conn.execute(
                insert(track_sessions).values(
                    site_id=site_id,
                    visitor_id=visitor,
                    started_at=now,
                    last_seen_at=now,
                    page_views=1,
                    events=1,
                    device="mobile",
                    gclid="gclid-of-a-click",
                )
            )
        assert result.inserted_primary_key is not None
        return int(result.inserted_primary_key[0])

    async def intent(
        self,
        site_id: int,
        *,
        kind: str = "phone",
        target: str = "tel:+905551112233",
        ago: timedelta = timedelta(0),
        session_id: int | None = None,
        ref_code: str | None = None,
        status: str = "pending",
    ) -> int:
        """An intent as the ingest writes it, created ``ago`` before the clock's now."""
        at = self.now() - ago
        stamp = f"ev-{site_id}-{at.timestamp()}-{ref_code}-{target}-{kind}"[:64]
        async with self.db.begin() as conn:
            result = await conn.execute(
                insert(track_intents).values(
                    site_id=site_id,
                    session_id=session_id,
                    kind=kind,
                    target=target,
                    stamp=stamp,
                    ref_code=ref_code,
                    gclid="gclid-of-a-click",
                    status=status,
                    lead_score=10,
                    created_at=at,
                    updated_at=at,
                )
            )
        assert result.inserted_primary_key is not None
        return int(result.inserted_primary_key[0])

    async def intent_row(self, site_id: int, intent_id: int) -> Any:
        async with self.db.connect() as conn:
            query = select(track_intents).where(
                track_intents.c.site_id == site_id, track_intents.c.id == intent_id
            )
            return (await conn.execute(query)).first()

    async def audit(self, action: str) -> list[dict[str, Any]]:
        query = select(audit_events).where(audit_events.c.action == action)
        async with self.db.connect() as conn:
            rows = (await conn.execute(query.order_by(audit_events.c.id))).mappings().all()
        return [dict(row) for row in rows]


@pytest.fixture(params=["memory-sqlite", "redis-mariadb"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "memory-sqlite":
        return {"database_url": f"sqlite+aiosqlite:///{tmp_path / 'people.db'}", "redis_url": None}
    return {
        "database_url": request.getfixturevalue("mariadb_url"),
        "redis_url": request.getfixturevalue("redis_url"),
        "redis_namespace": request.getfixturevalue("redis_namespace"),
    }


@pytest.fixture
def make_rig(
    make_settings: Callable[..., Settings],
    stack: dict[str, Any],
    request: pytest.FixtureRequest,
) -> Callable[..., Any]:
    """``async with make_rig(**settings) as rig``: a started app on a manual clock."""
    kind = request.node.callspec.params["stack"]

    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[Rig]:
        values: dict[str, Any] = {
            **stack,
            "telegram_bot_token": "123456:people-test-token",
            # Never called: no worker runs, the tests read the queued messages themselves.
            "telegram_base_url": "http://127.0.0.1:9",
            "queue_embedded_worker": False,
            "admin_api_key": ADMIN_KEY,
            "ratelimit_policies": GENEROUS_OTP_POLICIES,
            **overrides,
        }
        settings = make_settings(**values)
        clock = ManualClock(START)
        if kind != "memory-sqlite":  # the run's MariaDB keeps other tests' rows
            db = Database(settings.database_url)
            try:
                await _clear_tables(db)
            finally:
                await db.dispose()
        try:
            async with running_client(settings, clock=clock) as client:
                yield Rig(client, clock, kind)
        finally:
            if kind != "memory-sqlite":
                db = Database(settings.database_url)
                try:
                    await _clear_tables(db)
                finally:
                    await db.dispose()

    return make


@pytest.fixture
async def rig(make_rig: Callable[..., Any]) -> AsyncIterator[Rig]:
    async with make_rig() as made:
        yield made
