"""Fixtures of the admin login tests: a started app on a manual clock, over the in-process
backends with SQLite and over the real Redis with the real MariaDB, and helpers to add admins
and read the codes the app queued for Telegram."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from core.clock import ManualClock
from service.admins.accounts import Admin, add_admin
from service.db import Database
from service.db.tables.foundation import audit_events
from service.db.types import from_timestamp
from service.runtime import Runtime
from service.settings import Settings
from tests.conftest import _clear_tables, running_client

ADMIN_KEY = "test-admin-key"
GENEROUS_OTP_POLICIES = "otp.verify=100000/minute burst 100000; otp.send=100000/minute burst 100000"
START = 1_750_000_000.0
_CODE = re.compile(r"\b(\d{6})\b")


@dataclass
class AdminRig:
    client: httpx.AsyncClient
    clock: ManualClock
    kind: str  # "memory-sqlite" or "redis-mariadb"

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.client.app.state.runtime  # type: ignore[attr-defined]
        return runtime

    async def add(self, name: str, chat_id: str = "4242", language: str = "en") -> Admin:
        return await add_admin(
            self.runtime.db,
            name=name,
            telegram_chat_id=chat_id,
            language=language,
            now=from_timestamp(self.clock.now()),
            actor="test",
        )

    async def telegram_jobs(self) -> list[dict[str, Any]]:
        """The payloads of the Telegram messages queued since the last call (claimed here: no
        worker runs in these apps)."""
        queue = self.runtime.queue
        assert queue is not None
        jobs = await queue.claim(["telegram"], 100, worker_id="admins-test")
        for job in jobs:
            await queue.complete(job)
        return [job.payload for job in jobs]

    async def request_code(self, name: str, **headers: str) -> str:
        """Ask for a code for ``name`` and read it from the queued Telegram message."""
        answer = await self.client.post("/admin/otp/request", json={"admin": name}, headers=headers)
        assert answer.status_code == 202, answer.text
        payloads = await self.telegram_jobs()
        assert len(payloads) == 1, payloads
        found = _CODE.search(payloads[0]["text"])
        assert found is not None, payloads[0]
        return found.group(1)

    async def login(self, name: str) -> dict[str, Any]:
        code = await self.request_code(name)
        answer = await self.client.post("/admin/otp/verify", json={"admin": name, "code": code})
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        # Tests choose per request how they authenticate; the jar would add the cookie to all.
        self.client.cookies.clear()
        return body

    async def audit(self, action: str | None = None) -> list[dict[str, Any]]:
        query = select(audit_events).order_by(audit_events.c.id)
        if action is not None:
            query = query.where(audit_events.c.action == action)
        async with self.runtime.db.connect() as conn:
            return [dict(row) for row in (await conn.execute(query)).mappings().all()]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(params=["memory-sqlite", "redis-mariadb"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Settings for the backends and database of the parameter."""
    if request.param == "memory-sqlite":
        return {"database_url": f"sqlite+aiosqlite:///{tmp_path / 'admins.db'}", "redis_url": None}
    return {
        "database_url": request.getfixturevalue("mariadb_url"),
        "redis_url": request.getfixturevalue("redis_url"),
        "redis_namespace": request.getfixturevalue("redis_namespace"),
    }


@pytest.fixture
def admin_settings(
    make_settings: Callable[..., Settings], stack: dict[str, Any]
) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            **stack,
            "telegram_bot_token": "123456:admins-test-token",
            # Never called: no worker runs, the tests read the queued messages themselves.
            "telegram_base_url": "http://127.0.0.1:9",
            "queue_embedded_worker": False,
            "admin_api_key": ADMIN_KEY,
            # Tests log in many times from one address: the OTP policies' own tests put the
            # defaults back (ratelimit_policies="").
            "ratelimit_policies": GENEROUS_OTP_POLICIES,
        }
        values.update(overrides)
        return make_settings(**values)

    return build


@pytest.fixture
def make_rig(
    admin_settings: Callable[..., Settings], stack: dict[str, Any], request: pytest.FixtureRequest
) -> Callable[..., Any]:
    """``async with make_rig(**settings) as rig``: a started app on a manual clock."""
    kind = request.node.callspec.params["stack"]

    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[AdminRig]:
        settings = admin_settings(**overrides)
        clock = ManualClock(START)
        try:
            async with running_client(settings, clock=clock) as client:
                yield AdminRig(client, clock, kind)
        finally:
            if kind != "memory-sqlite":
                db = Database(settings.database_url)
                try:
                    await _clear_tables(db)
                finally:
                    await db.dispose()

    return make


@pytest.fixture
async def rig(make_rig: Callable[..., Any]) -> AsyncIterator[AdminRig]:
    async with make_rig() as made:
        yield made
